//! `landdb reference`: checks the reference data an operator may have replaced.

pub fn run(context: &crate::Context) -> anyhow::Result<()> {
    let reference = context.reference()?;
    let source = context
        .reference_dir
        .as_ref()
        .map_or_else(|| "built in".to_owned(), |d| format!("{} over built in", d.display()));
    println!("reference data:  {source}");
    println!("provinces:       {}", reference.provinces().count());
    println!("communes:        {}", reference.communes().count());
    let zones = reference.zones();
    println!(
        "VN-2000 zones:   {} (central meridians {})",
        zones.len(),
        zones.iter().map(|z| format!("{}°", z.central_meridian)).collect::<Vec<_>>().join(", ")
    );
    println!("land-use codes:  {}", reference.land_use_codes().count());
    Ok(())
}
