//! A copy kept in a PostGIS database: one table of the parcels (each property as the feed sent
//! it, the usual ones also as columns, the boundary as a geometry) and, in `landdb_sync`, the
//! token to resume from, written in the same transaction as the page it follows.

use anyhow::{Context, Result, bail};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use crate::plan::Plan;

#[derive(Debug)]
pub struct PostgisCopy {
    pool: PgPool,
    table: String,
}

impl PostgisCopy {
    /// The copy in table `table` of the database at `url`, made if it is not there.
    pub async fn open(url: &str, table: &str) -> Result<PostgisCopy> {
        if !table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || !table.starts_with(|c: char| c.is_ascii_lowercase())
        {
            bail!("table {table:?}: use lower-case letters, digits and underscores, starting with a letter");
        }
        let pool =
            PgPoolOptions::new().max_connections(2).connect(url).await.with_context(
                || "cannot connect to the target database (give a postgres:// URL that works with psql)",
            )?;
        let postgis: Option<String> =
            sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
                .fetch_optional(&pool)
                .await?;
        if postgis.is_none() {
            bail!("the target database has no PostGIS: run `CREATE EXTENSION postgis` in it first");
        }
        let schema = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                version     bigint PRIMARY KEY,
                national_id text GENERATED ALWAYS AS (properties->>'national_id') STORED,
                commune     text GENERATED ALWAYS AS (properties->>'commune') STORED,
                sheet       text GENERATED ALWAYS AS (properties->>'sheet') STORED,
                number      text GENERATED ALWAYS AS (properties->>'number') STORED,
                properties  jsonb NOT NULL,
                geom        geometry(MultiPolygon, 4326) NOT NULL,
                generation  bigint NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {table}_geom ON {table} USING gist (geom);
            CREATE TABLE IF NOT EXISTS landdb_sync (
                copy       text PRIMARY KEY,
                source     text NOT NULL,
                token      text NOT NULL,
                generation bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            );"
        );
        sqlx::raw_sql(&schema).execute(&pool).await.context("cannot make the copy's tables")?;
        Ok(PostgisCopy { pool, table: table.to_owned() })
    }

    /// The token to go on from, when the copy follows `source`.
    pub async fn resume(&self, source: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT source, token FROM landdb_sync WHERE copy = $1")
            .bind(&self.table)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let followed: String = r.try_get("source")?;
                if followed != source {
                    bail!("table {} is a copy of {followed}, not of {source}: give another --table", self.table);
                }
                Ok(Some(r.try_get("token")?))
            }
        }
    }

    /// Applies `plan` and keeps `next` with it, in one transaction.
    pub async fn apply(&self, source: &str, plan: &Plan, next: &str) -> Result<()> {
        let t = &self.table;
        let mut tx = self.pool.begin().await?;
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM landdb_sync WHERE copy = $1 FOR UPDATE")
                .bind(t)
                .fetch_optional(&mut *tx)
                .await?;
        let generation = generation.unwrap_or(0) + i64::from(plan.reset);
        if !plan.removals.is_empty() {
            sqlx::query(&format!("DELETE FROM {t} WHERE version = ANY($1)"))
                .bind(&plan.removals)
                .execute(&mut *tx)
                .await?;
        }
        if !plan.upserts.is_empty() {
            let features = serde_json::Value::Array(plan.upserts.iter().map(|(_, f)| f.clone()).collect());
            sqlx::query(&format!(
                "INSERT INTO {t} (version, properties, geom, generation)
                 SELECT (f->>'id')::bigint, f->'properties', ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(f->'geometry'), 4326)), $2
                 FROM jsonb_array_elements($1) f
                 ON CONFLICT (version) DO UPDATE
                 SET properties = EXCLUDED.properties, geom = EXCLUDED.geom, generation = EXCLUDED.generation"
            ))
            .bind(features)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .context("cannot write the page's parcels")?;
        }
        if plan.sweep {
            sqlx::query(&format!("DELETE FROM {t} WHERE generation < $1")).bind(generation).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO landdb_sync (copy, source, token, generation) VALUES ($1, $2, $3, $4)
             ON CONFLICT (copy) DO UPDATE SET source = EXCLUDED.source, token = EXCLUDED.token,
                 generation = EXCLUDED.generation, updated_at = now()",
        )
        .bind(t)
        .bind(source)
        .bind(next)
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Parcels in the copy.
    pub async fn count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", self.table)).fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
