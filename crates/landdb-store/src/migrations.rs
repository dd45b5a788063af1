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

/// A migrator over the first `upto` entries that lets the database be further on: the step before
/// landdb seals what SQL cannot (see `data_keys`).
pub(crate) fn migrator_upto(migrations: &'static [(i64, &'static str, &'static str)], upto: i64) -> Migrator {
    let mut m = migrator(migrations);
    m.migrations = Cow::Owned(m.migrations.iter().filter(|mig| mig.version <= upto).cloned().collect());
    m.ignore_missing = true;
    m
}
