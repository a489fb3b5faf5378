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
//! The whole API, by kind:
//! - sources: [`Flow::from_enumerable`] / [`Flow::from_enumerables`] (pulled by the first
//!   layer's stages themselves, no extra task), [`Flow::from_stream`], [`Flow::from_stages`],
//!   [`Flow::merge`];
//! - mappers, fused into the layer's stages: `map`, `filter`, `reject`, `filter_map`,
//!   `flat_map`, `inspect`, `map_values`, `uniq`, `uniq_by`, and [`Flow::map_batch`] (first
//!   in a layer only: the method exists only there);
//! - layers: [`Flow::partition`], [`Flow::shuffle`], [`Reduced::departition`];
//! - reducers, one per layer ([`Reduced`] has no mappers and no second reducer):
//!   [`Flow::reduce`], [`Flow::emit_and_reduce`], `group_by`, `group_by_key`, `take_sort`,
//!   then [`Reduced::on_trigger`] or [`Reduced::emit`] ([`emit::Events`], [`emit::State`],
//!   [`emit::Nothing`]);
//! - windows and triggers: [`Window`] (global, count, periodic, fixed with allowed lateness;
//!   every n events, periodically, custom), told to `on_trigger` as a [`Trigger`];
//! - joins: [`Flow::bounded_join`], [`Flow::window_join`] in every [`JoinMode`];
//! - running: `collect`, `run`, `into_stream`, `into_stages`, `start`, `collect_blocking`.

mod departition;
mod error;
mod flow;
mod join;
pub mod op;
pub mod partition;
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
