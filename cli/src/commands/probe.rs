//! `dastra-connect probe URL`: a minimal HTTP GET that exits 0 on a 2xx answer, for container
//! healthchecks (Dockerfile `HEALTHCHECK`, docker-compose) in an image that has no shell or curl.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options of `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// `http://host:port/path` to GET (plain HTTP: the admin port and the emulator).
    #[arg(default_value = "http://127.0.0.1:9090/readyz")]
    pub url: url::Url,
    /// Give up after this long (connect + answer).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// GETs the URL; Ok when the status is 2xx.
pub async fn execute(args: ProbeArgs) -> anyhow::Result<()> {
    let status = tokio::time::timeout(args.timeout, get_status(&args.url))
        .await
        .with_context(|| format!("{}: no answer within {:?}", args.url, args.timeout))??;
    if (200..300).contains(&status) {
        println!("{}: {status}", args.url);
        Ok(())
    } else {
        bail!("{}: HTTP {status}", args.url)
    }
}

/// The status code of `GET url` (HTTP/1.0, connection closed by the server).
async fn get_status(url: &url::Url) -> anyhow::Result<u16> {
    if url.scheme() != "http" {
        bail!("only http:// URLs can be probed, got {}", url.scheme());
    }
    let host = url.host_str().context("the URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("cannot connect to {host}:{port}"))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: dastra-connect-probe\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    // The status line is all we need: `HTTP/1.x NNN reason`.
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    code.with_context(|| format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(status: &'static str) -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        format!("http://{addr}/readyz").parse().unwrap()
    }

    #[tokio::test]
    async fn exits_ok_on_2xx_and_fails_on_anything_else() {
        let timeout = Duration::from_secs(2);
        assert!(execute(ProbeArgs { url: serve("200 OK").await, timeout }).await.is_ok());
        let err = execute(ProbeArgs { url: serve("503 Service Unavailable").await, timeout }).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let url: url::Url = format!("http://{closed}/healthz").parse().unwrap();
        assert!(execute(ProbeArgs { url, timeout }).await.is_err(), "nothing listening");
    }
}
