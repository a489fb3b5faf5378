//! The deterministic benchmark inputs of `shared/bench-inputs/gen_corpus.py`, ported to Rust.
//!
//! The Python generator's docstring is the specification; this module follows it so that
//! [`write_words`] and [`write_events`] produce the same bytes as
//! `gen_corpus.py words N_MB OUT` and `gen_corpus.py events N OUT` (checked with `cmp`, see
//! `benches/RESULTS.md`). Everything comes from a counter-based SplitMix64 generator with fixed
//! seeds and integer arithmetic only.
//!
//! * **words**: a 50,000-word vocabulary (bijective base-100 numerals written with 100
//!   syllables), Zipf-distributed (`w_r = floor(2^40 / (r + 1))`), lines of 5..20 words
//!   separated by single spaces, written until the file holds at least `N_MB * 10^6` bytes.
//! * **events**: `id,customer_id,amount_cents,timestamp_ms` lines; three draws per event
//!   (customer, amount, gap), timestamps strictly increasing by 1..3 ms from 1,700,000,000,000.

use std::io::{self, Write};

/// SplitMix64's increment (the golden gamma).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// Seed of the words stream.
pub const WORDS_SEED: u64 = 0x5EED_0001_F10C_0DE5;
/// Seed of the events stream.
pub const EVENTS_SEED: u64 = 0x5EED_0002_E7E1_75A5;
/// Words in the vocabulary.
pub const VOCAB_SIZE: usize = 50_000;
/// Distinct customers in the events.
pub const N_CUSTOMERS: u64 = 10_000;
/// The timestamp the first event's gap is added to.
pub const T0_MS: u64 = 1_700_000_000_000;

const CONSONANTS: &[u8; 20] = b"bcdfghjklmnprstvwxyz";
const VOWELS: &[u8; 5] = b"aeiou";

/// The counter-based SplitMix64 stream: `splitmix64(seed, 0)`, `splitmix64(seed, 1)`, ...
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next draw.
    #[inline]
    #[allow(clippy::should_implement_trait)] // an endless stream; `Iterator` would add nothing
    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The syllable of index `i` (0..100): consonant `i / 5`, vowel `i % 5`.
fn syllable(i: usize) -> [u8; 2] {
    [CONSONANTS[i / 5], VOWELS[i % 5]]
}

/// The word of rank `rank` (0-based): the bijective base-100 numeral of `rank + 1`.
pub fn word(rank: usize) -> String {
    let mut n = rank + 1;
    let mut parts = Vec::new();
    while n > 0 {
        n -= 1;
        parts.push(syllable(n % 100));
        n /= 100;
    }
    parts.iter().rev().flat_map(|s| s.iter().map(|&b| char::from(b))).collect()
}

/// The vocabulary: the words of ranks `0..VOCAB_SIZE`, most frequent first.
pub fn vocabulary() -> Vec<String> {
    (0..VOCAB_SIZE).map(word).collect()
}

/// The cumulative Zipf weights `C_r = w_0 + ... + w_r` with `w_r = floor(2^40 / (r + 1))`.
pub fn cumulative_weights() -> Vec<u64> {
    let mut total = 0u64;
    (0..VOCAB_SIZE as u64)
        .map(|r| {
            total += (1u64 << 40) / (r + 1);
            total
        })
        .collect()
}

/// What [`write_words`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordsStats {
    /// Bytes written.
    pub bytes: u64,
    /// Lines written.
    pub lines: u64,
    /// Words written.
    pub words: u64,
}

/// Writes the words corpus of at least `n_mb * 1,000,000` bytes to `out`.
///
/// # Errors
///
/// When writing to `out` fails.
pub fn write_words(n_mb: u64, out: impl Write) -> io::Result<WordsStats> {
    let vocab = vocabulary();
    let cum = cumulative_weights();
    let total = u128::from(*cum.last().expect("the vocabulary is not empty"));
    let target = n_mb * 1_000_000;
    let mut rng = SplitMix64::new(WORDS_SEED);
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut stats = WordsStats { bytes: 0, lines: 0, words: 0 };
    let mut line: Vec<u8> = Vec::with_capacity(256);
    while stats.bytes < target {
        let length = 5 + rng.next() % 16;
        line.clear();
        for i in 0..length {
            if i > 0 {
                line.push(b' ');
            }
            let u = ((u128::from(rng.next()) * total) >> 64) as u64;
            // bisect_right: the smallest rank r with C_r > u.
            let rank = cum.partition_point(|&c| c <= u);
            line.extend_from_slice(vocab[rank].as_bytes());
        }
        line.push(b'\n');
        out.write_all(&line)?;
        stats.bytes += line.len() as u64;
        stats.lines += 1;
        stats.words += length;
    }
    out.flush()?;
    Ok(stats)
}

/// What [`write_events`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsStats {
    /// Events written.
    pub events: u64,
    /// Sum of all `amount_cents`.
    pub amount_sum: u64,
    /// The last event's `timestamp_ms`.
    pub last_ts: u64,
}

/// One event of the events corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// 1-based position in the file.
    pub id: u64,
    /// `1..=10_000`.
    pub customer_id: u64,
    /// `1..=100_000`.
    pub amount_cents: u64,
    /// Milliseconds since the Unix epoch, strictly increasing.
    pub timestamp_ms: u64,
}

impl Event {
    /// Parses one line `id,customer_id,amount_cents,timestamp_ms` (without its newline).
    pub fn parse(line: &str) -> Option<Event> {
        let mut fields = line.split(',').map(|f| f.parse::<u64>().ok());
        let event = Event {
            id: fields.next()??,
            customer_id: fields.next()??,
            amount_cents: fields.next()??,
            timestamp_ms: fields.next()??,
        };
        fields.next().is_none().then_some(event)
    }
}

/// The events `1..=n`, as [`write_events`] writes them.
pub fn events(n: u64) -> impl Iterator<Item = Event> {
    let mut rng = SplitMix64::new(EVENTS_SEED);
    let mut t = T0_MS;
    (1..=n).map(move |id| {
        let customer_id = 1 + rng.next() % N_CUSTOMERS;
        let amount_cents = 1 + rng.next() % 100_000;
        t += 1 + rng.next() % 3;
        Event { id, customer_id, amount_cents, timestamp_ms: t }
    })
}

/// Writes `n` events to `out`, one `id,customer_id,amount_cents,timestamp_ms` line each.
///
/// # Errors
///
/// When writing to `out` fails.
pub fn write_events(n: u64, out: impl Write) -> io::Result<EventsStats> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut stats = EventsStats { events: 0, amount_sum: 0, last_ts: T0_MS };
    for e in events(n) {
        writeln!(out, "{},{},{},{}", e.id, e.customer_id, e.amount_cents, e.timestamp_ms)?;
        stats.events += 1;
        stats.amount_sum += e.amount_cents;
        stats.last_ts = e.timestamp_ms;
    }
    out.flush()?;
    Ok(stats)
}

/// Writes the words corpus to the file `path` (see [`write_words`]).
///
/// # Errors
///
/// When the file cannot be created or written.
pub fn write_words_file(n_mb: u64, path: &std::path::Path) -> io::Result<WordsStats> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_words(n_mb, std::fs::File::create(path)?)
}

/// Writes the events corpus to the file `path` (see [`write_events`]).
///
/// # Errors
///
/// When the file cannot be created or written.
pub fn write_events_file(n: u64, path: &std::path::Path) -> io::Result<EventsStats> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_events(n, std::fs::File::create(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_distinct_and_ordered_by_syllables() {
        let vocab = vocabulary();
        assert_eq!(vocab[0], "ba");
        assert_eq!(vocab[1], "be");
        assert_eq!(vocab[99], "zu");
        assert_eq!(vocab[100], "baba");
        assert_eq!(vocab[10_099], "zuzu");
        assert_eq!(vocab[10_100], "bababa");
        let distinct: std::collections::HashSet<&String> = vocab.iter().collect();
        assert_eq!(distinct.len(), VOCAB_SIZE);
    }

    #[test]
    fn first_lines_match_the_python_generator() {
        // `python3 gen_corpus.py words 1 w && head -c 60 w`, `... events 3 e && cat e`.
        let mut words = Vec::new();
        write_words(1, &mut words).expect("writing to a Vec");
        assert!(words.starts_with(b"balaxa bi bivevo baxaxu je tefi nu buka fu ma di faja fi be\n"));
        assert_eq!(words.len(), 1_000_025);
        let mut events = Vec::new();
        write_events(3, &mut events).expect("writing to a Vec");
        assert_eq!(
            String::from_utf8(events).expect("ascii"),
            "1,943,69898,1700000000002\n2,6904,97343,1700000000003\n3,1318,63015,1700000000005\n"
        );
    }

    #[test]
    fn events_parse_back() {
        let e = Event::parse("2,6904,97343,1700000000003").expect("a valid line");
        assert_eq!(
            e,
            Event { id: 2, customer_id: 6904, amount_cents: 97343, timestamp_ms: 1_700_000_000_003 }
        );
        assert_eq!(Event::parse("2,6904,97343"), None);
        assert_eq!(Event::parse("2,6904,97343,1,5"), None);
    }
}
