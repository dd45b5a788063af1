//! One module per subcommand.

pub mod access;
pub mod demo;
pub mod export;
pub mod import;
pub mod reference;
pub mod serve;
pub mod status;
pub mod validate;
