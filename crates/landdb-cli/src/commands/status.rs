//! `landdb status`: what the store holds.

use landdb_store::ParcelStore;

pub async fn run(context: &crate::Context) -> anyhow::Result<()> {
    let url = context.database_url()?;
    let store = context.store().await?;
    println!("store:           {} ({url})", store.kind());
    println!("current parcels: {}", store.count_current().await?);
    println!("feed position:   {}", store.feed_head().await?);
    Ok(())
}
