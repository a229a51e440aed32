//! A child's output, collected line by line by a reader thread, for tests to wait on.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines collected from a pipe by [`collect`]'s thread; waits wake up as lines come.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    more: Condvar,
}

impl Lines {
    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every line so far, joined by newlines.
    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Adds a line (what the reader thread does).
    pub fn push(&self, line: String) {
        if let Ok(mut all) = self.lines.lock() {
            all.push(line);
        }
        self.more.notify_all();
    }

    /// Waits until `n` lines match `pred`, at most `within`; returns the first `n` or more
    /// that do, or `None` at the deadline. Woken by every new line (and at least every
    /// 100 ms).
    pub fn wait_for(
        &self,
        within: Duration,
        n: usize,
        pred: impl Fn(&str) -> bool,
    ) -> Option<Vec<String>> {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock().ok()?;
        loop {
            let found: Vec<String> = lines.iter().filter(|l| pred(l)).cloned().collect();
            if found.len() >= n {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self
                .more
                .wait_timeout(lines, left.min(Duration::from_millis(100)))
                .ok()?
                .0;
        }
    }
}

/// Reads `pipe` line by line into `lines` until it closes, on a thread of its own. A line
/// that is not UTF-8 is kept (lossily converted), and reading goes on.
pub fn collect(pipe: impl Read + Send + 'static, lines: Arc<Lines>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                    }
                    lines.push(String::from_utf8_lossy(&buf).into_owned());
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_collected_and_waited_for() {
        let lines = Arc::new(Lines::default());
        let reader = collect(&b"one\ntwo\r\nth\xffree"[..], lines.clone());
        let got = lines
            .wait_for(Duration::from_secs(5), 3, |_| true)
            .expect("three lines");
        assert_eq!(got[..2], ["one", "two"]);
        assert!(got[2].starts_with("th"), "{got:?}");
        reader.join().expect("the reader ends with the pipe");
        assert_eq!(lines.wait_for(Duration::ZERO, 4, |_| true), None);
    }
}
