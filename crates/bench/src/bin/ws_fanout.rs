//! `bench-ws`: scenario (f) of `make bench`, one change fanned out to many WebSocket subscribers.
//!
//! It opens `SOCKETS` (default 1,000) connections to `GET /api/v1/ws`, signs each in with the
//! protocol's first message (`{"type":"auth","token":…}`) and subscribes each to one public
//! document. The service caps sockets per user (5, `WS_CONNECTIONS_PER_USER` in
//! crates/app/src/startup.rs, not configurable and not weakened here), so the tokens come from as
//! many accounts as needed: scripts/bench.sh registers them and passes one access token per line
//! in the file named by `TOKENS_FILE`, each used for at most 5 sockets.
//!
//! Then, `ROUNDS` times, the owner changes the document through REST (`PATCH`, with `If-Match`)
//! and every socket's reader notes when the `document.updated` event arrives. The delivery
//! latency of a socket is the time from just before the PATCH was sent to its event: the REST
//! write, the commit, the PostgreSQL NOTIFY, the service's listener and its fan-out to every
//! local subscriber (each event authorised again for each subscriber), and the frame's trip.
//!
//! Prints `ws <sockets> <p50 ms> <p99 ms> <max ms> <events/s>` for scripts/bench.sh; the first
//! round is a warm-up (it also proves the fan-out listener is connected) and is not counted.
//! Environment: `BASE_URL` (http://127.0.0.1:PORT), `TOKENS_FILE`, `OWNER_TOKEN`, `DOCUMENT_ID`,
//! `SOCKETS`, `ROUNDS` (default 5).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PER_USER: usize = 5;

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow!("bench-ws: {name} is required"))
}

/// The next JSON text message, within 30 s.
async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .context("no message within 30 s")?
            .ok_or_else(|| anyhow!("the socket closed"))??;
        match frame {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(close) => bail!("closed by the server: {close:?}"),
            _ => {}
        }
    }
}

async fn open(ws_url: &str, token: &str, topic: &str) -> anyhow::Result<Socket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let auth = json!({"type": "auth", "token": token}).to_string();
    socket.send(Message::Text(auth.into())).await?;
    let ready = next_json(&mut socket).await?;
    if ready["type"] != "ready" {
        bail!("expected ready, got {ready}");
    }
    let subscribe = json!({"type": "subscribe", "topic": topic}).to_string();
    socket.send(Message::Text(subscribe.into())).await?;
    let subscribed = next_json(&mut socket).await?;
    if subscribed["type"] != "subscribed" {
        bail!("expected subscribed, got {subscribed}");
    }
    Ok(socket)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let base = env("BASE_URL")?;
    let tokens: Vec<String> = std::fs::read_to_string(env("TOKENS_FILE")?)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let owner = env("OWNER_TOKEN")?;
    let document = env("DOCUMENT_ID")?;
    let sockets: usize = std::env::var("SOCKETS").map_or(Ok(1_000), |v| v.parse())?;
    let rounds: usize = std::env::var("ROUNDS").map_or(Ok(5), |v| v.parse())?;
    if tokens.len() * PER_USER < sockets {
        bail!(
            "bench-ws: {} tokens allow {} sockets, {sockets} asked",
            tokens.len(),
            tokens.len() * PER_USER
        );
    }
    let ws_url = format!("{}/api/v1/ws", base.replacen("http://", "ws://", 1));
    let topic = format!("document:{document}");

    // Open every socket, 32 handshakes at a time (each one is a sign-in check on the server).
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(32));
    let mut opening = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let (ws_url, topic, token, gate) = (
            ws_url.clone(),
            topic.clone(),
            tokens[i / PER_USER].clone(),
            gate.clone(),
        );
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            open(&ws_url, &token, &topic).await
        }));
    }
    // One reader per socket: it sends the instant each event arrived down the channel.
    let (arrived, mut arrivals) = mpsc::unbounded_channel::<Instant>();
    for (i, handle) in opening.into_iter().enumerate() {
        let socket = handle
            .await?
            .with_context(|| format!("opening socket {i}"))?;
        let arrived = arrived.clone();
        tokio::spawn(async move {
            let mut socket = socket;
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Text(text) = frame
                    && text.contains("\"document.updated\"")
                {
                    let _ = arrived.send(Instant::now());
                }
            }
        });
    }
    drop(arrived);
    eprintln!(
        "bench-ws: {sockets} sockets open and subscribed in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/documents/{document}");
    let current: Value = client
        .get(&url)
        .bearer_auth(&owner)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let first_version = current["version"]
        .as_i64()
        .ok_or_else(|| anyhow!("no version in {current}"))?;

    let mut latencies = Vec::with_capacity(sockets * rounds);
    let mut delivered_per_s = Vec::new();
    for round in 0..=rounds {
        // Each PATCH bumps the version by one: round n changes version first + n.
        let version = first_version + i64::try_from(round)?;
        let sent = Instant::now();
        let response = client
            .patch(&url)
            .bearer_auth(&owner)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({"title": format!("Fan-out round {round}")}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("PATCH answered {}", response.status());
        }
        let mut got = Vec::with_capacity(sockets);
        while got.len() < sockets {
            match tokio::time::timeout(Duration::from_secs(30), arrivals.recv()).await {
                Ok(Some(at)) => got.push(at.duration_since(sent)),
                Ok(None) => bail!("every socket closed"),
                Err(_) => bail!(
                    "round {round}: only {} of {sockets} events within 30 s",
                    got.len()
                ),
            }
        }
        if round > 0 {
            let last = got.iter().max().copied().unwrap_or_default();
            delivered_per_s.push(sockets as f64 / last.as_secs_f64());
            latencies.extend(got);
        }
    }
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rate = delivered_per_s.iter().sum::<f64>() / delivered_per_s.len().max(1) as f64;
    println!(
        "ws {sockets} {:.2} {:.2} {:.2} {rate:.0}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    Ok(())
}
