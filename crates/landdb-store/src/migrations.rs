//! The schema migrations of both stores, compiled in from `migrations/` and run by sqlx's migrator
//! (idempotent; concurrent starts are serialised by its lock).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// A migrator over `(version, name, sql)` entries.
pub(crate) fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(*version, Cow::Borrowed(name), MigrationType::Simple, Cow::Borrowed(sql), false)
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}
