//! A minimal local SMTP receiver for the mail tests: accepts any number of connections and
//! records each message with its envelope recipients, so a test can count exactly what was
//! sent and to whom.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentinel::server::alerts::EmailConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One message as received.
#[derive(Clone, Debug)]
pub struct Mail {
    /// `RCPT TO` addresses, without the angle brackets.
    pub rcpt: Vec<String>,
    /// The DATA section (headers and body), one line per line.
    pub data: String,
}

impl Mail {
    /// The value of a header (the first line only; subjects we send are short).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}: ");
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }
}

pub struct Receiver {
    pub port: u16,
    got: Arc<Mutex<Vec<Mail>>>,
}

impl Receiver {
    /// Listens on a free localhost port until the test ends.
    pub async fn start() -> Receiver {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let sink = got.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mails = session(sock).await;
                    sink.lock().unwrap().extend(mails);
                });
            }
        });
        Receiver { port, got }
    }

    /// A relay configuration pointing here (plain SMTP, as for a local relay).
    pub fn config(&self) -> EmailConfig {
        EmailConfig {
            smtp_host: "127.0.0.1".into(),
            smtp_port: self.port,
            security: "none".into(),
            username: None,
            password: None,
            from: "Sentinel <sentinel@example.org>".into(),
            to: vec!["soc@example.org".into()],
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` messages arrived, and returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.mails();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} mails arrived: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One SMTP conversation; returns the messages it carried.
async fn session(sock: tokio::net::TcpStream) -> Vec<Mail> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    let mut out = Vec::new();
    if w.write_all(b"220 localhost ESMTP test\r\n").await.is_err() {
        return out;
    }
    let (mut rcpt, mut data, mut in_data) = (Vec::new(), String::new(), false);
    while let Ok(Some(line)) = lines.next_line().await {
        if in_data {
            if line == "." {
                in_data = false;
                out.push(Mail {
                    rcpt: std::mem::take(&mut rcpt),
                    data: std::mem::take(&mut data),
                });
                let _ = w.write_all(b"250 queued\r\n").await;
            } else {
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            continue;
        }
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-localhost\r\n250 8BITMIME\r\n",
            "RCPT" => {
                let addr = line
                    .split_once(':')
                    .map(|(_, a)| a.trim().trim_start_matches('<').trim_end_matches('>'))
                    .unwrap_or("");
                rcpt.push(addr.to_string());
                b"250 ok\r\n"
            }
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n").await;
                break;
            }
            _ => b"250 ok\r\n",
        };
        if w.write_all(reply).await.is_err() {
            break;
        }
    }
    out
}
