//! Kafka → pipeline → PostgreSQL end to end on loopback: orders produced to a topic, one or
//! two pipelines in one consumer group with the Kafka producer, and the PostgreSQL batch
//! writer upserting rows that record where each order came from (partition, offset) and
//! when it arrived (a sequence number taken as its batch is written). Every test counts at
//! both ends: rows in the table, and the group's committed offsets. Both services are needed
//! (`scripts/services.sh kafka postgres`); without them these tests fail, never skip.
#![cfg(all(feature = "kafka", feature = "postgres"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use support::kafka::{
    committed, committed_until, cut_connections, metadata_int, options, topic_with, unique as topic_name,
};
use support::postgres::{connect, drop_table, fresh, rows_reach, unique as table_name};
use tokio::sync::RwLock;
use tokio_postgres::Client;
use weir_broadway::{
    BatchHandler, BatchInfo, BatcherOptions, BoxError, Handler, Message, Pipeline, ProcessorOptions,
    ProducerOptions,
};
use weir_connectors::kafka::{KafkaOptions, KafkaProducer, OrderBy};
use weir_connectors::postgres::PostgresWriter;
use weir_connectors::sql::{ColumnType, Row, Table, Value};

/// Taken for writing by the test that cuts this process's connections to the broker, for
/// reading by the others: they must not lose theirs meanwhile.
static BROKER: LazyLock<RwLock<()>> = LazyLock::new(RwLock::default);

/// One order as written: its id, where it came from, when it arrived, and which pipeline
/// wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Landed {
    id: i64,
    partition: i64,
    offset: i64,
    seq: i64,
    instance: i64,
}

impl Row for Landed {
    fn values(&self) -> Vec<Value> {
        vec![self.id.into(), self.partition.into(), self.offset.into(), self.seq.into(), self.instance.into()]
    }
}

fn landed_table(name: &str) -> Table {
    Table::new(name)
        .column("id", ColumnType::BigInt)
        .column("part", ColumnType::BigInt)
        .column("off", ColumnType::BigInt)
        .column("seq", ColumnType::BigInt)
        .column("instance", ColumnType::BigInt)
        .key(["id"])
}

/// What the pipelines of a test share: the arrival sequence, every order written (to count
/// duplicates), and a gate holding back one order.
#[derive(Default)]
struct Shared {
    seq: AtomicI64,
    written: Mutex<Vec<i64>>,
    hold: Option<i64>,
    open: AtomicBool,
}

/// Parses orders (their id is the record's value), holds [`Shared::hold`] until opened, and
/// writes batches after `delay`, numbering their rows in arrival order.
struct Ingest {
    writer: PostgresWriter,
    shared: Arc<Shared>,
    instance: i64,
    delay: Duration,
}

impl Handler for Ingest {
    type Data = Vec<u8>;
    type Output = Landed;

    async fn handle_message(&self, message: &mut Message<Vec<u8>>) -> Result<Landed, BoxError> {
        let id: i64 = std::str::from_utf8(message.data())?.parse()?;
        if self.shared.hold == Some(id) {
            while !self.shared.open.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let (partition, offset) = (metadata_int(message, "partition"), metadata_int(message, "offset"));
        Ok(Landed { id, partition, offset, seq: 0, instance: self.instance })
    }
}

impl BatchHandler for Ingest {
    async fn handle_batch(&self, rows: &mut [Message<Landed>], _: &BatchInfo) -> Result<(), BoxError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        for row in rows.iter_mut() {
            row.data_mut().seq = self.shared.seq.fetch_add(1, Ordering::SeqCst);
        }
        self.writer.write(rows).await?;
        self.shared.written.lock().unwrap().extend(rows.iter().map(|row| row.data().id));
        Ok(())
    }
}

/// A test's topic (`partitions` partitions holding orders `0..n`, keyed `k{id % keys}`
/// when `keys` > 0), group and table, and how the pipelines order messages.
struct Setup {
    topic: String,
    group: String,
    table: String,
    client: Client,
    shared: Arc<Shared>,
    keys: u64,
}

async fn setup(test: &str, partitions: i32, n: u64, keys: u64, shared: Shared) -> Setup {
    let table = table_name(test);
    let client = fresh(&table).await;
    let topic = topic_with(test, partitions, n, keys).await;
    Setup { topic, group: topic_name(test), table, client, shared: Arc::new(shared), keys }
}

impl Setup {
    /// Ordered by key when the records have keys, by partition otherwise.
    fn options(&self) -> KafkaOptions {
        let order = if self.keys > 0 { OrderBy::Key } else { OrderBy::Partition };
        options(&self.topic, &self.group).metadata(["partition", "offset"]).order_by(order)
    }

    /// What must stay in order: the partition, or the key.
    fn order_of(&self, landed: &Landed) -> i64 {
        if self.keys > 0 {
            landed.id % self.keys as i64
        } else {
            landed.partition
        }
    }

    /// A pipeline in the test's group: Kafka → 2 processors → batches of 100 (20 ms) on 2
    /// batch processors → PostgreSQL, each write after `delay`.
    async fn start(&self, instance: i64, delay: Duration) -> Pipeline<Ingest> {
        let writer = connect(&self.table, landed_table(&self.table)).await;
        let ingest = Ingest { writer, shared: self.shared.clone(), instance, delay };
        Pipeline::builder(format!("kafka-to-postgres-{instance}"), ingest)
            .producer(KafkaProducer::factory(self.options()).unwrap(), ProducerOptions::new())
            .processors(ProcessorOptions::new().concurrency(2).max_demand(50))
            .batcher(
                "default",
                BatcherOptions::new().batch_size(100).batch_timeout(Duration::from_millis(20)).concurrency(2),
            )
            .start()
            .await
            .unwrap()
    }

    /// Waits (at most `seconds`) until the table holds `rows` rows.
    async fn rows_reach(&self, rows: i64, seconds: u64) {
        rows_reach(&self.client, &self.table, rows, seconds).await;
    }

    /// Every row, in arrival order.
    async fn landed(&self) -> Vec<Landed> {
        self.client
            .query(&format!("SELECT id, part, off, seq, instance FROM {} ORDER BY seq", self.table), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| Landed {
                id: row.get(0),
                partition: row.get(1),
                offset: row.get(2),
                seq: row.get(3),
                instance: row.get(4),
            })
            .collect()
    }

    /// Checks the end state: orders `0..n`, one row each, each partition's (or key's) rows
    /// arrived in offset order, no order written twice, everything committed.
    async fn check(&self, n: u64, partitions: i32) -> Vec<Landed> {
        let landed = self.landed().await;
        let ids: HashSet<i64> = landed.iter().map(|l| l.id).collect();
        assert_eq!(ids, (0..n as i64).collect::<HashSet<_>>(), "every order");
        assert_eq!(landed.len() as u64, n, "one row each");
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        for row in &landed {
            let previous = last.insert(self.order_of(row), row.offset);
            assert!(previous.is_none_or(|p| p < row.offset), "order broken at {row:?} after {previous:?}");
        }
        let written = self.shared.written.lock().unwrap().clone();
        let mut twice: Vec<i64> = written.clone();
        twice.sort_unstable();
        twice.dedup();
        assert_eq!(written.len(), twice.len(), "orders written twice: {}", written.len() - twice.len());
        let per_partition = (n / partitions as u64) as i64;
        committed_until(&self.group, &self.topic, &vec![per_partition; partitions as usize], 10).await;
        landed
    }

    async fn clean(self) {
        drop_table(&self.client, &self.table).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_produced_order_is_one_row_each_partition_in_order_and_everything_is_committed() {
    let _broker = BROKER.read().await;
    const N: u64 = 5_000;
    let setup = setup("kpg_all", 4, N, 0, Shared::default()).await;
    let pipeline = setup.start(0, Duration::ZERO).await;
    setup.rows_reach(N as i64, 60).await;
    let report = pipeline.stop().await;
    assert!(report.graceful, "{report:?}");
    setup.check(N, 4).await;
    setup.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_early_order_holds_the_commit_back_and_no_commit_is_ahead_of_its_rows() {
    let _broker = BROKER.read().await;
    const N: u64 = 2_000;
    // One partition, ordered by key (40 keys) over 2 processors: while order 100 (offset
    // 100) is held, orders of other keys after it are written and acknowledged, but the
    // commit stays at or below 100.
    let setup = setup("kpg_slow", 1, N, 40, Shared { hold: Some(100), ..Shared::default() }).await;
    let pipeline = setup.start(0, Duration::ZERO).await;
    setup.rows_reach(150, 60).await;
    for _ in 0..10 {
        // Commits and rows only grow: every offset under a commit read first is in the table.
        let offset = committed(&setup.group, &setup.topic, 1).await[0];
        let rows: HashSet<i64> = setup.landed().await.iter().map(|l| l.offset).collect();
        assert!((0..offset).all(|o| rows.contains(&o)), "committed {offset} ahead of the rows");
        assert!(offset <= 100, "committed {offset} past the held record 100");
        assert!(rows.iter().any(|o| *o > 100), "records after 100 written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    setup.shared.open.store(true, Ordering::SeqCst);
    setup.rows_reach(N as i64, 60).await;
    assert!(pipeline.stop().await.graceful);
    setup.check(N, 1).await;
    setup.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joining_mid_stream_takes_partitions_and_every_order_lands_once() {
    let _broker = BROKER.read().await;
    const N: u64 = 8_000;
    let setup = setup("kpg_join", 4, N, 0, Shared::default()).await;
    // Slow writes keep the stream going while the second instance joins.
    let first = setup.start(1, Duration::from_millis(10)).await;
    setup.rows_reach(1_500, 60).await;
    let second = setup.start(2, Duration::from_millis(10)).await;
    setup.rows_reach(N as i64, 120).await;
    assert!(first.stop().await.graceful);
    assert!(second.stop().await.graceful);

    let landed = setup.check(N, 4).await;
    let by_second = landed.iter().filter(|l| l.instance == 2).count();
    assert!(by_second > 0, "the second instance took no partition");
    assert!(landed.iter().filter(|l| l.instance == 1).count() >= 1_500);
    setup.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_instance_hands_its_partitions_to_the_other_without_loss() {
    let _broker = BROKER.read().await;
    const N: u64 = 8_000;
    let setup = setup("kpg_handoff", 4, N, 0, Shared::default()).await;
    let first = setup.start(1, Duration::from_millis(10)).await;
    let second = setup.start(2, Duration::from_millis(10)).await;
    // Both have partitions, then the first stops mid-stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let landed = setup.landed().await;
        if [1, 2].iter().all(|i| landed.iter().any(|l| l.instance == *i)) && landed.len() >= 2_000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "both instances never wrote: {} rows", landed.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = first.stop().await;
    assert!(report.graceful, "{report:?}");
    let by_first = setup.landed().await.iter().filter(|l| l.instance == 1).count();
    assert!(by_first < N as usize / 2, "stopped mid-stream");

    setup.rows_reach(N as i64, 120).await;
    assert!(second.stop().await.graceful);
    let landed = setup.check(N, 4).await;
    assert_eq!(
        landed.iter().filter(|l| l.instance == 1).count(),
        by_first,
        "nothing by the first after it stopped"
    );
    setup.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_broker_connections_mid_stream_loses_no_order() {
    let _broker = BROKER.write().await;
    const N: u64 = 6_000;
    let setup = setup("kpg_cut", 3, N, 0, Shared::default()).await;
    let pipeline = setup.start(0, Duration::from_millis(5)).await;
    let mut cut = 0;
    for rows in [1_000, 3_000] {
        setup.rows_reach(rows, 60).await;
        cut += cut_connections().await;
    }
    assert!(cut >= 2, "no connection to cut");
    setup.rows_reach(N as i64, 120).await;
    assert!(pipeline.stop().await.graceful);

    // At least once: a commit lost with a connection may bring orders again, and the
    // upsert keeps one row each; the order per partition holds all the same.
    let landed = setup.landed().await;
    assert_eq!(landed.iter().map(|l| l.id).collect::<HashSet<_>>(), (0..N as i64).collect());
    assert_eq!(landed.len() as u64, N);
    committed_until(&setup.group, &setup.topic, &[2_000; 3], 10).await;
    setup.clean().await;
}
