//! Fluent, lazy, parallel dataflow over `weir-core` stages: Flow for Rust.
//!
//! Write iterator-style code; get it run on all cores with back-pressure. Mappers fuse into
//! the stages of a layer; `partition` starts a new layer where equal keys meet; `reduce`
//! folds each stage's events.
//!
//! ```
//! use std::collections::HashMap;
//! use weir_flow::{Flow, Partition};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), weir_flow::Error> {
//!     let text = vec!["the quick fox", "the lazy dog", "the end"];
//!     let counts: HashMap<String, usize> = Flow::from_enumerable(text)
//!         .flat_map(|line: &str| line.split(' ').map(String::from).collect::<Vec<_>>())
//!         .filter(|word: &String| word.len() > 2)
//!         .partition(Partition::new().key(|word: &String| word.clone()))
//!         .reduce(HashMap::new, |word, mut acc: HashMap<String, usize>| {
//!             *acc.entry(word).or_default() += 1;
//!             acc
//!         })
//!         .collect()
//!         .await?;
//!     assert_eq!(counts["the"], 3);
//!     assert_eq!(counts.len(), 6);
//!     Ok(())
//! }
//! ```
//!
//! Here so far: sources (`from_enumerable(s)`, `from_stream`, `from_stages`, `merge`), fused
//! mappers (`map`, `filter`, `reject`, `filter_map`, `flat_map`, `inspect`, `map_values`,
//! `uniq`, `uniq_by`), layers (`partition`, `shuffle`), reducers over the whole input
//! (`reduce` emitting the state's items, `group_by`, `group_by_key`, `take_sort`) and every
//! way to run (`collect`, `run`, `into_stream`, `into_stages`, `start`, `collect_blocking`).
//! Windows, triggers, `emit` modes, joins and `departition` come next.

mod departition;
mod error;
mod flow;
mod join;
pub mod op;
mod partition;
pub mod reduce;
mod reduced;
mod source;
mod stage;
mod window;

pub use error::Error;
pub use flow::{Flow, FlowStream, FlowTask, RunningFlow};
pub use join::{JoinMode, Side};
pub use partition::Partition;
pub use reduce::emit;
pub use reduced::{Reduced, Windowed};
pub use window::{Reason, Trigger, Window, WindowId};
