//! One module per subcommand.

pub mod demo;
pub mod import;
pub mod load;
pub mod reference;
pub mod status;
pub mod validate;
