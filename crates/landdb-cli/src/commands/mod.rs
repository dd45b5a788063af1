//! One module per subcommand.

pub mod access;
pub mod demo;
pub mod export;
pub mod import;
pub mod reference;
pub mod serve;
pub mod status;
pub mod sync;
pub mod validate;

/// A spinner on standard error, drawn only on a terminal (quiet in scripts and pipes), in
/// indicatif's `template`.
pub fn spinner(what: &str, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(what.to_owned());
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
