//! `landdb status`: what the store holds.

use landdb_store::{AnyStore, ParcelStore};

pub async fn run(context: &crate::Context) -> anyhow::Result<()> {
    let store = context.store().await?;
    print(context, &store).await
}

pub async fn print(context: &crate::Context, store: &AnyStore) -> anyhow::Result<()> {
    println!("store:           {} ({})", store.kind(), context.database_url()?);
    println!("current parcels: {}", store.count_current().await?);
    println!("feed position:   {}", store.feed_head().await?);
    Ok(())
}

/// `landdb migrate`: opening the store migrates it (refused on a standby, with what to give).
pub async fn migrate(context: &crate::Context) -> anyhow::Result<()> {
    let store = context.store().await?;
    println!("store:  {} ({})", store.kind(), context.database_url()?);
    println!("schema: migration {}, up to date", store.schema_version().await?);
    Ok(())
}
