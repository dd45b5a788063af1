//! Vietnamese legacy text encodings of cadastral DBF attributes: decode TCVN3 (ABC), VNI-Windows,
//! CP1258 and UTF-8 bytes into NFC Unicode, encode Unicode back into them (for test data), and detect
//! which one a file's strings are in when its `.cpg` is missing or wrong.
//!
//! ```
//! use landdb_text::{Encoding, decode, detect, encode};
//!
//! let tcvn3 = encode("Phường Hải Châu", Encoding::Tcvn3).expect("Vietnamese letters are all in TCVN3");
//! assert_eq!(decode(&tcvn3, Encoding::Tcvn3), "Phường Hải Châu");
//! assert_eq!(detect(&[tcvn3.as_slice()]).encoding, Encoding::Tcvn3);
//! ```

mod decode;
mod detect;
mod encode;
mod encoding;
mod errors;
mod syllable;
mod tables;

pub use decode::decode;
pub use detect::{Detection, detect};
pub use encode::encode;
pub use encoding::Encoding;
pub use errors::{EncodeError, UnknownEncoding};
