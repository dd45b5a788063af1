//! Which encoding a file's string attributes are in, judged from their bytes.

use crate::Encoding;
use crate::decode::decode_with;
use crate::syllable::is_vietnamese_syllable;
use crate::tables::StrayMarks;

/// The outcome of [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The most plausible encoding.
    pub encoding: Encoding,
    /// Whether the bytes clearly favour it. When false, the caller should prefer what the `.cpg` or
    /// the operator says, and report the guess.
    pub confident: bool,
}

/// Legacy candidates in the order ties go: TCVN3 is the most common in old cadastral data, then VNI.
/// UTF-8 is a candidate too, for files that are mostly UTF-8 with some broken records.
const CANDIDATES: [Encoding; 4] = [Encoding::Tcvn3, Encoding::Vni, Encoding::Cp1258, Encoding::Utf8];

/// Fewer non-ASCII words than this are too few to be sure of anything.
const MIN_WORDS: usize = 5;
/// Share of the non-ASCII words that must read as Vietnamese syllables in the chosen encoding.
const MIN_SHARE: f64 = 0.6;
/// How far the chosen encoding must be ahead of the next best, in share of words.
const MIN_LEAD: f64 = 0.2;

/// Decides which encoding the raw bytes of a file's string fields are in; pass many samples (the
/// values of all string fields of many records) for a sure answer.
///
/// - Only ASCII: any encoding reads it the same; UTF-8, not confident.
/// - All valid UTF-8 with multi-byte sequences: UTF-8, confident (legacy Vietnamese text is practically
///   never valid UTF-8).
/// - Otherwise each candidate decodes the samples, and the one under which the largest share of words
///   with non-ASCII letters reads as Vietnamese syllables wins: one tone mark at most, on a vowel, in a
///   known onset + nucleus + coda shape, in one case. A VNI diacritic byte that follows no base vowel
///   counts against VNI.
///
/// ```
/// use landdb_text::{Encoding, detect};
///
/// let names: [&[u8]; 5] = [b"Nguy\xD4n", b"Tr\xC7n V\xA8n", b"Ph\xAD\xEAng", b"L\xAA Th\xDE", b"\xAE\xCAt \xEB"];
/// assert_eq!(detect(&names).encoding, Encoding::Tcvn3);
/// assert!(!detect(&[b"Lot 12".as_slice()]).confident);
/// ```
#[must_use]
pub fn detect(samples: &[&[u8]]) -> Detection {
    if samples.iter().all(|s| s.is_ascii()) {
        return Detection { encoding: Encoding::Utf8, confident: false };
    }
    if samples.iter().all(|s| std::str::from_utf8(s).is_ok()) {
        return Detection { encoding: Encoding::Utf8, confident: true };
    }
    let mut scores: Vec<(Encoding, Plausibility)> =
        CANDIDATES.into_iter().map(|encoding| (encoding, Plausibility::of(samples, encoding))).collect();
    // Stable sort: equal shares keep the CANDIDATES order.
    scores.sort_by(|(_, a), (_, b)| b.share().total_cmp(&a.share()));
    let (encoding, best) = scores[0];
    let runner_up = scores[1].1.share();
    let confident = best.words >= MIN_WORDS && best.share() >= MIN_SHARE && best.share() - runner_up >= MIN_LEAD;
    Detection { encoding, confident }
}

/// How many of the words with non-ASCII letters read as Vietnamese under one encoding.
#[derive(Debug, Clone, Copy, Default)]
struct Plausibility {
    words: usize,
    syllables: usize,
}

impl Plausibility {
    fn of(samples: &[&[u8]], encoding: Encoding) -> Self {
        let mut plausibility = Plausibility::default();
        for sample in samples.iter().filter(|s| !s.is_ascii()) {
            let text = decode_with(sample, encoding, StrayMarks::AsInvalid);
            // Digits and ASCII punctuation separate words; anything else non-ASCII stays in the word,
            // so that mojibake symbols ("¶", "µ") spoil it.
            for word in text.split(|c: char| c.is_whitespace() || c.is_ascii_punctuation() || c.is_ascii_digit()) {
                if word.is_ascii() {
                    continue;
                }
                plausibility.words += 1;
                if is_vietnamese_syllable(word) {
                    plausibility.syllables += 1;
                }
            }
        }
        plausibility
    }

    fn share(self) -> f64 {
        if self.words == 0 {
            return 0.0;
        }
        #[expect(clippy::cast_precision_loss, reason = "word counts are far below 2^52")]
        let share = self.syllables as f64 / self.words as f64;
        share
    }
}
