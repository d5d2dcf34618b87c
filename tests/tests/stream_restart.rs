//! How fast `funnel stream` resumes after `kill -9` on a real broker (tansu): from the new process's start
//! to its first applied batch, split into start-up (metrics endpoint up), group join (partitions
//! assigned) and the first batch. `STREAM_RESTART_CONFIGS=all` measures every consumer setting below
//! and prints a table (static membership: tansu 0.6 never assigns the partitions); by default only the
//! stream's defaults are measured and held to their bound: the session timeout + 0.5 s.
//! `STREAM_RESTART_DEBUG=1` prints each restarted process's log with librdkafka's group debugging.

mod stream_support;

use std::time::{Duration, Instant};

use stream::synth::{generate, TrafficSpec};
use stream_support::*;

struct Timing {
    up: Duration,
    assigned: Duration,
    first_batch: Duration,
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Kills a caught-up stream, restarts it at once with the same settings, produces new messages and
/// times the restart.
/// `Err` with the rounds measured so far when the stream stopped making progress.
fn measure(
    broker: &Broker,
    label: &str,
    kafka: &[&str],
    rounds: usize,
) -> Result<Vec<Timing>, Vec<Timing>> {
    let (topic, partitions) = (format!("t-{label}"), 2);
    broker.create_topic(&topic, partitions);
    let brokers = broker.addr();
    let group = format!("g-{label}");
    let dir = tempfile::tempdir().unwrap();
    let facts = format!("sqlite:{}", dir.path().join("facts.db").display());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut extra = vec!["--metrics", &metrics, "--batch-max-ms", "50"];
    for kv in kafka {
        extra.extend(["--kafka", kv]);
    }
    let args = stream_args(&brokers, &topic, &group, &facts, &extra);
    let applied = || store_offsets(&facts, &group, &topic).values().sum::<i64>();
    produce(&brokers, &topic, &generate(&TrafficSpec::new(1, 30)));
    let mut s = StreamProc::start(dir.path(), &format!("{label}-0"), &args, &[]);
    let mut out = Vec::new();
    for round in 1..=rounds {
        // Caught up (or, with a broker that never assigns the partitions again, the end of the story).
        let ends: i64 = end_offsets(&brokers, &topic, partitions).iter().sum();
        let deadline = Instant::now() + Duration::from_secs(30);
        while applied() < ends {
            if Instant::now() > deadline {
                eprintln!(
                    "{label}: round {round}: not caught up 30 s after the (re)start; log:\n{}",
                    tail(&read(&s.log), 8)
                );
                return Err(out);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = applied();
        s.kill9();
        let t0 = Instant::now();
        let debug = std::env::var("STREAM_RESTART_DEBUG").is_ok();
        let env: &[(&str, &str)] = if debug {
            &[(
                "RUST_LOG",
                "info,stream=debug,librdkafka=debug,rdkafka=debug",
            )]
        } else {
            &[]
        };
        let mut round_args = args.clone();
        if debug {
            round_args.extend(["--kafka".into(), "debug=cgrp".into()]);
        }
        s = StreamProc::start(dir.path(), &format!("{label}-{round}"), &round_args, env);
        produce(
            &brokers,
            &topic,
            &generate(&TrafficSpec::new(round as u64 + 1, 10)),
        );
        let (mut up, mut assigned) = (None, None);
        let deadline = t0 + Duration::from_secs(120);
        let first_batch = loop {
            let now = t0.elapsed();
            let text = scrape(&metrics);
            if up.is_none() && !text.is_empty() {
                up = Some(now);
            }
            if assigned.is_none()
                && metric(&text, "funnel_stream_assigned_partitions").is_some_and(|v| v > 0.0)
            {
                assigned = Some(now);
            }
            if applied() > before {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "{label}: no batch 120 s after the restart:\n{}",
                tail(&read(&s.log), 30)
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        if debug {
            eprintln!("--- {label} round {round}, t0 = start:\n{}", read(&s.log));
        }
        out.push(Timing {
            up: up.unwrap_or(first_batch),
            assigned: assigned.unwrap_or(first_batch),
            first_batch,
        });
    }
    Ok(out)
}

fn report(label: &str, t: &[Timing]) {
    let ms = |d: Duration| d.as_millis();
    let list = |f: &dyn Fn(&Timing) -> Duration| {
        t.iter()
            .map(|x| ms(f(x)).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "{label:<28} up [{}] ms  assigned [{}] ms  first batch [{}] ms",
        list(&|x| x.up),
        list(&|x| x.assigned),
        list(&|x| x.first_batch)
    );
}

#[test]
fn restart_after_kill_9_is_measured() {
    let Some(tansu) = tansu_or_skip("stream_restart") else {
        return;
    };
    let broker = Broker::start(&tansu);
    let all = std::env::var("STREAM_RESTART_CONFIGS").is_ok_and(|v| v == "all");
    let configs: Vec<(&str, Vec<&str>)> = if all {
        vec![
            ("session-6000", vec!["session.timeout.ms=6000"]),
            (
                "session-1000",
                vec!["session.timeout.ms=1000", "heartbeat.interval.ms=100"],
            ),
            (
                "session-300",
                vec!["session.timeout.ms=300", "heartbeat.interval.ms=50"],
            ),
            (
                "session-1000-fetch-wait-50",
                vec![
                    "session.timeout.ms=1000",
                    "heartbeat.interval.ms=100",
                    "fetch.wait.max.ms=50",
                ],
            ),
            (
                "static-6000",
                vec!["session.timeout.ms=6000", "group.instance.id=stream-a"],
            ),
        ]
    } else {
        vec![("defaults", vec![])]
    };
    for (label, kafka) in configs {
        match measure(&broker, label, &kafka, 3) {
            Ok(t) => {
                report(label, &t);
                if !all {
                    // The broker holds the partitions until the dead member's 6 s session expires
                    // (stream::consumer::RESTART_DEFAULTS); the stream's own part must stay under 0.5 s.
                    let mut firsts: Vec<Duration> = t.iter().map(|x| x.first_batch).collect();
                    firsts.sort();
                    let median = firsts[firsts.len() / 2];
                    assert!(
                        median <= Duration::from_millis(6_500),
                        "restart to first batch: median {median:?} > session timeout + 0.5 s"
                    );
                }
            }
            Err(t) => {
                report(label, &t);
                eprintln!("{label:<28} STOPPED: the partitions were not assigned again");
                assert!(all, "the stream's defaults must resume after kill -9");
            }
        }
    }
}
