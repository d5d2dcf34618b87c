//! Load generator of `bench/serve.sh`: N concurrent clients, each on one keep-alive HTTP/1.1 connection,
//! request the given paths round-robin for D seconds; prints one JSON line per path with the count and
//! the p50 / p99 / max latency in milliseconds (a non-200 answer is counted as an error).
//!
//!   serve_load ADDR CLIENTS SECONDS PATH…

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Sample = (usize, Duration, bool);

/// Sends one GET and reads the whole answer; returns whether it was a 200.
async fn get(conn: &mut BufReader<TcpStream>, host: &str, path: &str) -> std::io::Result<bool> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let ok = line.split(' ').nth(1) == Some("200");
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().map_err(std::io::Error::other)?;
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok(ok)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, clients, seconds, paths @ ..] = args.as_slice() else {
        eprintln!("usage: serve_load ADDR CLIENTS SECONDS PATH…");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().map_err(std::io::Error::other)?;
    let until =
        Instant::now() + Duration::from_secs_f64(seconds.parse().map_err(std::io::Error::other)?);
    let paths: Vec<String> = paths.to_vec();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addr, paths) = (addr.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = BufReader::new(TcpStream::connect(&addr).await?);
            let mut samples: Vec<Sample> = Vec::new();
            let mut i = c;
            while Instant::now() < until {
                let p = i % paths.len();
                let started = Instant::now();
                let ok = get(&mut conn, &addr, &paths[p]).await?;
                samples.push((p, started.elapsed(), ok));
                i += 1;
            }
            Ok::<_, std::io::Error>(samples)
        }));
    }
    let mut all: Vec<Sample> = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(std::io::Error::other)??);
    }
    for (p, path) in paths.iter().enumerate() {
        let mut times: Vec<Duration> = all.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
        times.sort();
        let errors = all.iter().filter(|s| s.0 == p && !s.2).count();
        println!(
            "{{\"path\": {:?}, \"requests\": {}, \"errors\": {errors}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}}}",
            path,
            times.len(),
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            percentile(&times, 1.0)
        );
    }
    Ok(())
}
