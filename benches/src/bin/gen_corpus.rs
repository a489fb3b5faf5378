//! The deterministic benchmark inputs, byte for byte those of `shared/bench-inputs/gen_corpus.py`.
//!
//! ```text
//! cargo run --release -p weir-benches --bin gen_corpus -- words N_MB OUT   # Zipf words, >= N_MB * 10^6 bytes
//! cargo run --release -p weir-benches --bin gen_corpus -- events N OUT     # N lines id,customer_id,amount_cents,timestamp_ms
//! ```
//!
//! Prints the same summary line on stderr as the Python generator. See `weir_benches::corpus`.

use std::path::Path;
use std::process::ExitCode;

use weir_benches::corpus::{write_events_file, write_words_file};

const USAGE: &str =
    "usage:\n    gen_corpus words N_MB OUT   # Zipf-distributed words, >= N_MB * 10^6 bytes\n    \
                     gen_corpus events N OUT     # N lines \"id,customer_id,amount_cents,timestamp_ms\"";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, size, out] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Ok(size) = size.replace('_', "").parse::<u64>() else {
        eprintln!("error: size {size:?} is not a number\n{USAGE}");
        return ExitCode::from(2);
    };
    let path = Path::new(out);
    let result = match kind.as_str() {
        "words" => write_words_file(size, path).map(|s| {
            eprintln!("words: {out} bytes={} lines={} words={}", s.bytes, s.lines, s.words);
        }),
        "events" => write_events_file(size, path).map(|s| {
            eprintln!("events: {out} n={} amount_sum={} last_ts={}", s.events, s.amount_sum, s.last_ts);
        }),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing {out}: {e}");
            ExitCode::FAILURE
        }
    }
}
