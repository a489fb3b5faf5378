//! Configuration: `Builder::start` checks every option and names the one it rejects, with
//! its value and the rule it breaks; valid options show in the topology.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use weir_broadway::memory::MemoryProducer;
use weir_broadway::{
    BatchHandler, BatchInfo, BatchSize, BatcherOptions, BoxError, Builder, Error, Handler, Message, Pipeline,
    ProcessorOptions, ProducerOptions, RateLimit, RetryPolicy, SizeStep,
};

struct Nop;

impl Handler for Nop {
    type Data = u8;
    type Output = u8;

    async fn handle_message(&self, message: &mut Message<u8>) -> Result<u8, BoxError> {
        Ok(*message.data())
    }
}

impl BatchHandler for Nop {
    async fn handle_batch(&self, _: &mut [Message<u8>], _: &BatchInfo) -> Result<(), BoxError> {
        Ok(())
    }
}

fn builder(producer: ProducerOptions) -> Builder<Nop> {
    let (factory, _queue) = MemoryProducer::queue();
    Pipeline::builder("config", Nop).producer(factory, producer)
}

/// A builder with a valid producer.
fn valid() -> Builder<Nop> {
    builder(ProducerOptions::new())
}

/// Starts `builder`, which must be rejected for `option` (with `value`), displayed as `text`.
async fn assert_rejected(builder: Builder<Nop>, option: &str, value: &str, text: &str) {
    let error = match builder.start().await {
        Ok(pipeline) => {
            pipeline.stop().await;
            panic!("started, expected {text:?}");
        }
        Err(error) => error,
    };
    match &error {
        Error::InvalidOption { option: o, value: v, .. } => assert_eq!((*o, v.as_str()), (option, value)),
        other => panic!("expected InvalidOption {option}, got {other:?}"),
    }
    assert_eq!(error.to_string(), text);
}

#[tokio::test]
async fn a_pipeline_needs_a_producer_and_a_name() {
    let no_producer = Pipeline::builder("config", Nop);
    assert_rejected(no_producer, "producer", "none", "producer (none) is required: call Builder::producer")
        .await;

    let (factory, _queue) = MemoryProducer::queue();
    let no_name = Pipeline::builder("", Nop).producer(factory, ProducerOptions::new());
    assert_rejected(no_name, "name", r#""""#, r#"name ("") must not be empty"#).await;
}

#[tokio::test]
async fn producer_options_are_checked() {
    let none = builder(ProducerOptions::new().concurrency(0));
    assert_rejected(none, "producer.concurrency", "0", "producer.concurrency (0) must be greater than 0")
        .await;

    let no_messages = builder(ProducerOptions::new().rate_limit(RateLimit::new(0, Duration::from_secs(1))));
    assert_rejected(
        no_messages,
        "producer.rate_limit.allowed_messages",
        "0",
        "producer.rate_limit.allowed_messages (0) must be greater than 0",
    )
    .await;

    let no_interval = builder(ProducerOptions::new().rate_limit(RateLimit::new(10, Duration::ZERO)));
    assert_rejected(
        no_interval,
        "producer.rate_limit.interval",
        "0ns",
        "producer.rate_limit.interval (0ns) must be greater than 0",
    )
    .await;
}

#[tokio::test]
async fn processor_options_are_checked() {
    let cases = [
        (ProcessorOptions::new().concurrency(0), "processors.concurrency", "0", "must be greater than 0"),
        (ProcessorOptions::new().max_demand(0), "processors.max_demand", "0", "must be greater than 0"),
        (
            ProcessorOptions::new().max_demand(10).min_demand(10),
            "processors.min_demand",
            "10",
            "must be less than max_demand (10)",
        ),
        (
            ProcessorOptions::new().max_demand(10).min_demand(11),
            "processors.min_demand",
            "11",
            "must be less than max_demand (10)",
        ),
        // The default max_demand is 10.
        (
            ProcessorOptions::new().min_demand(10),
            "processors.min_demand",
            "10",
            "must be less than max_demand (10)",
        ),
        (
            ProcessorOptions::new().message_concurrency(0),
            "processors.message_concurrency",
            "0",
            "must be greater than 0",
        ),
    ];
    for (options, option, value, rule) in cases {
        assert_rejected(valid().processors(options), option, value, &format!("{option} ({value}) {rule}"))
            .await;
    }
    assert_eq!(
        ProcessorOptions::<u8>::new().max_demand(10).min_demand(10).validate().unwrap_err().to_string(),
        "processors.min_demand (10) must be less than max_demand (10)"
    );
}

#[tokio::test]
async fn batcher_options_are_checked() {
    let by_size =
        || BatchSize::by(0, |_: &Message<u8>, n| if n == 9 { SizeStep::Emit } else { SizeStep::Cont(n + 1) });
    let cases = [
        (BatcherOptions::new().batch_size(0), "batchers.batch_size", "0", "must be greater than 0"),
        (
            BatcherOptions::new().batch_timeout(Duration::ZERO),
            "batchers.batch_timeout",
            "0s",
            "must be greater than 0",
        ),
        (BatcherOptions::new().concurrency(0), "batchers.concurrency", "0", "must be greater than 0"),
        (BatcherOptions::new().max_demand(0), "batchers.max_demand", "0", "must be greater than 0"),
        (
            BatcherOptions::new().max_demand(20).min_demand(20),
            "batchers.min_demand",
            "20",
            "must be less than max_demand (20)",
        ),
        // max_demand defaults to the batch size...
        (
            BatcherOptions::new().batch_size(5).min_demand(5),
            "batchers.min_demand",
            "5",
            "must be less than max_demand (5)",
        ),
        // ...or to 100 with a size function.
        (
            BatcherOptions::new().batch_size(by_size()).min_demand(100),
            "batchers.min_demand",
            "100",
            "must be less than max_demand (100)",
        ),
    ];
    for (options, option, value, rule) in cases {
        let text = format!("{option} ({value}) {rule}");
        assert_rejected(valid().batcher("sql", options.clone()), option, value, &text).await;
        // The same when it is the second batcher.
        let second = valid().batcher("s3", BatcherOptions::new()).batcher("sql", options);
        assert_rejected(second, option, value, &text).await;
    }
}

#[tokio::test]
async fn batcher_names_must_be_given_and_distinct() {
    let empty = valid().batcher("", BatcherOptions::new());
    assert_rejected(empty, "batchers.name", r#""""#, r#"batchers.name ("") must not be empty"#).await;

    let repeated = valid()
        .batcher("sql", BatcherOptions::new())
        .batcher("s3", BatcherOptions::new())
        .batcher("sql", BatcherOptions::new());
    assert_rejected(
        repeated,
        "batchers.name",
        r#""sql""#,
        r#"batchers.name ("sql") must not repeat a batcher"#,
    )
    .await;
}

#[tokio::test]
async fn retry_policy_is_checked() {
    let (one, two) = (Duration::from_secs(1), Duration::from_secs(2));
    let cases = [
        (RetryPolicy::new(0), "retry.max_attempts", "0", "must be at least 1"),
        (
            RetryPolicy::new(3).backoff(two, one),
            "retry.initial_backoff",
            "2s",
            "must not exceed max_backoff (1s)",
        ),
        (RetryPolicy::new(3).multiplier(0.5), "retry.multiplier", "0.5", "must be a finite number >= 1"),
        (RetryPolicy::new(3).multiplier(f64::NAN), "retry.multiplier", "NaN", "must be a finite number >= 1"),
        (
            RetryPolicy::new(3).multiplier(f64::INFINITY),
            "retry.multiplier",
            "inf",
            "must be a finite number >= 1",
        ),
    ];
    for (policy, option, value, rule) in cases {
        assert_rejected(valid().retry(policy), option, value, &format!("{option} ({value}) {rule}")).await;
    }
}

#[tokio::test]
async fn shutdown_timeout_must_be_positive() {
    let zero = valid().shutdown_timeout(Duration::ZERO);
    assert_rejected(zero, "shutdown_timeout", "0s", "shutdown_timeout (0s) must be greater than 0").await;
}

#[tokio::test]
async fn the_first_invalid_option_is_reported() {
    // Checked in order: name, producer, processors, batchers, retry, shutdown timeout.
    let all_wrong = Pipeline::builder("", Nop)
        .processors(ProcessorOptions::new().max_demand(0))
        .batcher("sql", BatcherOptions::new().batch_size(0))
        .retry(RetryPolicy::new(0))
        .shutdown_timeout(Duration::ZERO);
    assert_rejected(all_wrong, "name", r#""""#, r#"name ("") must not be empty"#).await;

    let from_processors = builder(ProducerOptions::new())
        .processors(ProcessorOptions::new().max_demand(0))
        .batcher("sql", BatcherOptions::new().batch_size(0))
        .retry(RetryPolicy::new(0));
    assert_rejected(
        from_processors,
        "processors.max_demand",
        "0",
        "processors.max_demand (0) must be greater than 0",
    )
    .await;

    let from_batchers =
        valid().batcher("sql", BatcherOptions::new().batch_size(0)).retry(RetryPolicy::new(0));
    assert_rejected(
        from_batchers,
        "batchers.batch_size",
        "0",
        "batchers.batch_size (0) must be greater than 0",
    )
    .await;
}

#[tokio::test]
async fn boundary_values_are_accepted() {
    let pipeline = builder(ProducerOptions::new().rate_limit(RateLimit::new(1, Duration::from_nanos(1))))
        .processors(ProcessorOptions::new().concurrency(1).max_demand(1).min_demand(0).message_concurrency(1))
        .batcher(
            "sql",
            BatcherOptions::new().batch_size(1).batch_timeout(Duration::from_nanos(1)).min_demand(0),
        )
        .batcher("s3", BatcherOptions::new().max_demand(2).min_demand(1))
        .retry(RetryPolicy::new(1).backoff(Duration::from_secs(1), Duration::from_secs(1)).multiplier(1.0))
        .shutdown_timeout(Duration::from_nanos(1))
        .start()
        .await
        .unwrap();
    assert!(pipeline.is_running());
    pipeline.stop().await;
}

#[tokio::test]
async fn valid_options_show_in_the_topology() {
    let by_size = BatchSize::by(7, |_: &Message<u8>, _| SizeStep::Emit);
    let pipeline = builder(ProducerOptions::new().concurrency(2))
        .processors(ProcessorOptions::new().concurrency(3).max_demand(4))
        .batcher(
            "sql",
            BatcherOptions::new().batch_size(5).batch_timeout(Duration::from_secs(2)).concurrency(2),
        )
        .batcher("s3", BatcherOptions::new().batch_size(by_size))
        .start()
        .await
        .unwrap();

    assert_eq!(pipeline.name(), "config");
    assert_eq!(pipeline.producer_names(), vec!["config.producer_0", "config.producer_1"]);
    let topology = pipeline.topology();
    assert_eq!(topology.processors, vec!["config.processor_0", "config.processor_1", "config.processor_2"]);
    assert_eq!(topology.processor_max_demand, 4);
    let batchers: Vec<_> = topology
        .batchers
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.stage.as_str(),
                b.batch_processors.clone(),
                b.batch_size.as_str(),
                b.concurrency,
            )
        })
        .collect();
    assert_eq!(
        batchers,
        vec![
            (
                "sql",
                "config.batcher_sql",
                vec!["config.batch_processor_sql_0".to_string(), "config.batch_processor_sql_1".to_string()],
                "5",
                2,
            ),
            (
                "s3",
                "config.batcher_s3",
                vec!["config.batch_processor_s3_0".to_string()],
                "by function (init 7)",
                1
            ),
        ]
    );
    assert_eq!(topology.batchers[0].batch_timeout, Duration::from_secs(2));
    assert_eq!(
        topology.to_string(),
        "producers: config.producer_0, config.producer_1\n\
         processors: 3 (max_demand 4)\n\
         batcher sql: batch_size 5, batch_timeout 2s, 2 batch processors\n\
         batcher s3: batch_size by function (init 7), batch_timeout 1s, 1 batch processors\n"
    );
    assert_eq!(pipeline.rate_limit(), None);
    pipeline.stop().await;
}

#[tokio::test]
async fn update_rate_limit_needs_a_rate_limit_from_the_start() {
    let limit = RateLimit::new(10, Duration::from_secs(1));

    let pipeline = valid().start().await.unwrap();
    let error = pipeline.update_rate_limit(limit).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidOption { option: "producer.rate_limit", value, .. } if value == "none")
    );
    assert_eq!(error.to_string(), "producer.rate_limit (none) must be set when the pipeline starts");
    assert_eq!(pipeline.rate_limit(), None);
    pipeline.stop().await;

    let pipeline = builder(ProducerOptions::new().rate_limit(limit)).start().await.unwrap();
    assert_eq!(pipeline.rate_limit(), Some(limit));
    let error = pipeline.update_rate_limit(RateLimit::new(0, Duration::from_secs(1))).unwrap_err();
    assert_eq!(error.to_string(), "producer.rate_limit.allowed_messages (0) must be greater than 0");
    let error = pipeline.update_rate_limit(RateLimit::new(5, Duration::ZERO)).unwrap_err();
    assert_eq!(error.to_string(), "producer.rate_limit.interval (0ns) must be greater than 0");
    assert_eq!(pipeline.rate_limit(), Some(limit), "a rejected limit changes nothing");

    let slower = RateLimit::new(5, Duration::from_secs(2));
    pipeline.update_rate_limit(slower).unwrap();
    assert_eq!(pipeline.rate_limit(), Some(slower));
    pipeline.stop().await;
}
