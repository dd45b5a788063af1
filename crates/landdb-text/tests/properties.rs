//! Property: any text of Vietnamese letters and printable ASCII survives encode then decode.

mod common;

use common::vietnamese_letters;
use landdb_text::{Encoding, decode, encode};
use proptest::prelude::*;

fn vietnamese_text() -> impl Strategy<Value = String> {
    let letters = vietnamese_letters();
    let ascii: Vec<char> = (' '..='~').collect();
    let alphabet: Vec<char> = letters.into_iter().chain(ascii).collect();
    proptest::collection::vec(proptest::sample::select(alphabet), 0..40).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn decode_inverts_encode(text in vietnamese_text()) {
        for encoding in Encoding::ALL {
            let bytes = encode(&text, encoding).expect("Vietnamese letters and ASCII are encodable");
            prop_assert_eq!(decode(&bytes, encoding), text.clone(), "{}", encoding);
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for encoding in Encoding::ALL {
            let _ = decode(&bytes, encoding);
        }
        let _ = landdb_text::detect(&[bytes.as_slice()]);
    }
}
