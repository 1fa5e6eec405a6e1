//! The `--dry-run` implementation of [`Publisher`]: documents go to stdout instead of the
//! broker, as JSON lines or as an aligned table sorted by `cpu_pct`, and every one counts
//! as delivered. Nothing else in the pass changes, which is what makes a dry run honest.

use crate::broker::{Batch, DeliveryError, Publisher};
pub(crate) use crate::output::OutputFormat;
use serde_json::Value;
use std::io::Write;
use std::sync::Mutex;

/// Prints documents instead of publishing them.
pub(crate) struct Printer {
    format: OutputFormat,
    /// Table rows wait here until the pass ends, to be sorted.
    rows: Mutex<Vec<Row>>,
}

impl Printer {
    pub(crate) fn new(format: OutputFormat) -> Printer {
        Printer {
            format,
            rows: Mutex::new(Vec::new()),
        }
    }
}

impl Publisher for Printer {
    fn publish_batch(&self, batch: Batch) -> Vec<Result<(), DeliveryError>> {
        match self.format {
            OutputFormat::Json => {
                let mut out = std::io::stdout().lock();
                for doc in batch.iter() {
                    // A closed stdout (`| head`) is not a delivery failure of the pass.
                    let _ = out.write_all(doc.body).and_then(|()| out.write_all(b"\n"));
                }
            }
            OutputFormat::Table => {
                let rows = batch.iter().filter_map(|doc| Row::from_json(doc.body));
                lock(&self.rows).extend(rows);
            }
        }
        vec![Ok(()); batch.len()]
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        if self.format == OutputFormat::Table {
            let mut rows = std::mem::take(&mut *lock(&self.rows));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(render_table(&mut rows).as_bytes());
        }
        Ok(())
    }
}

/// A poisoned lock only means another thread panicked while pushing rows; the rows
/// already there are still whole.
fn lock(rows: &Mutex<Vec<Row>>) -> std::sync::MutexGuard<'_, Vec<Row>> {
    rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    app: String,
    task: String,
    host: String,
    cpu_pct: Option<f64>,
    thr_pct: Option<f64>,
    mem_pct: Option<f64>,
    mem_bytes: Option<u64>,
    /// A pass would hold this document back (no cpu_pct or mem_pct).
    incomplete: bool,
}

impl Row {
    fn from_json(body: &[u8]) -> Option<Row> {
        let doc: Value = serde_json::from_slice(body).ok()?;
        let text = |field: &str| {
            doc.get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(Row {
            app: text("appname"),
            task: text("taskname"),
            host: text("host"),
            cpu_pct: doc.get("cpu_pct").and_then(Value::as_f64),
            thr_pct: doc.get("cpu_thr_pct").and_then(Value::as_f64),
            mem_pct: doc.get("mem_pct").and_then(Value::as_f64),
            mem_bytes: doc.get("mem_bytes").and_then(Value::as_u64),
            incomplete: doc.get("incomplete").and_then(Value::as_bool) == Some(true),
        })
    }
}

/// Column widths of the table: 16 + 15 + 21 + 6 + 5 + 5 + 6 and six separating spaces
/// make 80 characters.
const WIDTHS: [usize; 7] = [16, 15, 21, 6, 5, 5, 6];

/// Marks the app of a row a pass would hold back, explained under the table.
const INCOMPLETE_MARK: &str = "*";
const INCOMPLETE_NOTE: &str =
    "* incomplete (no CPU% or MEM%): held back unless --publish-incomplete\n";

/// Sorts rows by cpu_pct (highest first, missing last; ties by app and task) and lays
/// them out in columns that fit 80 characters: long names are shortened in the middle,
/// numbers never overflow their column. Rows a pass would hold back are marked.
fn render_table(rows: &mut [Row]) -> String {
    rows.sort_by(|a, b| {
        let key = |r: &Row| r.cpu_pct.unwrap_or(f64::NEG_INFINITY);
        key(b)
            .total_cmp(&key(a))
            .then_with(|| a.app.cmp(&b.app))
            .then_with(|| a.task.cmp(&b.task))
    });
    let [app, task, host, cpu, thr, mem_pct, mem] = WIDTHS;
    let mut out = format!(
        "{:<app$} {:<task$} {:<host$} {:>cpu$} {:>thr$} {:>mem_pct$} {:>mem$}\n",
        "APP", "TASK", "HOST", "CPU%", "THR%", "MEM%", "MEM"
    );
    for r in rows.iter() {
        let name = if r.incomplete {
            format!("{INCOMPLETE_MARK}{}", r.app)
        } else {
            r.app.clone()
        };
        out.push_str(&format!(
            "{:<app$} {:<task$} {:<host$} {:>cpu$} {:>thr$} {:>mem_pct$} {:>mem$}\n",
            shorten(&name, app),
            shorten(&r.task, task),
            shorten(&r.host, host),
            percent(r.cpu_pct, cpu),
            percent(r.thr_pct, thr),
            percent(r.mem_pct, mem_pct),
            r.mem_bytes.map_or("-".to_string(), human_bytes),
        ));
    }
    if rows.iter().any(|r| r.incomplete) {
        out.push_str(INCOMPLETE_NOTE);
    }
    out
}

/// A percentage with one decimal, or without decimals when that would not fit `width`;
/// a value too large even then shows as `>` and the largest that fits.
fn percent(value: Option<f64>, width: usize) -> String {
    let Some(v) = value else {
        return "-".to_string();
    };
    let text = format!("{v:.1}");
    if text.len() <= width {
        return text;
    }
    let text = format!("{v:.0}");
    if text.len() <= width {
        return text;
    }
    let digits = width.saturating_sub(1).clamp(1, 18);
    let largest = 10u64.pow(digits as u32) - 1;
    format!(">{largest}")
}

/// Keeps the start and the end of a long name, which tell tasks apart best.
fn shorten(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_string();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let mut short: String = chars[..head].iter().collect();
    short.push('…');
    short.extend(&chars[chars.len() - tail..]);
    short
}

/// Bytes in binary units, as `free -h` prints them, in at most 5 characters: one
/// decimal below 10 (`5.5M`), none above (`512M`, `1023K`).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else if value < 9.95 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, cpu: Option<f64>) -> Row {
        Row {
            app: app.into(),
            task: format!("{app}.task-with-a-very-long-identifier-0000"),
            host: "127.1.0.1:5051".into(),
            cpu_pct: cpu,
            thr_pct: Some(1.25),
            mem_pct: None,
            mem_bytes: Some(5 * 1024 * 1024 + 512 * 1024),
            incomplete: false,
        }
    }

    #[test]
    fn table_is_sorted_by_cpu_and_fits_80_columns() {
        let huge = Row {
            cpu_pct: Some(1e7),
            thr_pct: Some(12345.0),
            mem_pct: Some(1500.25),
            mem_bytes: Some(1023 * 1024 + 1000),
            host: "a-very-long-agent-hostname.example.com:5051".into(),
            ..row("/a/very/long/group/and/app/name", None)
        };
        let mut rows = vec![
            row("/low", Some(1.0)),
            row("/none", None),
            row("/high", Some(250.5)),
            huge,
        ];
        let table = render_table(&mut rows);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("APP"));
        assert!(
            lines[1].starts_with("/a/very…")
                && lines[2].starts_with("/high")
                && lines[3].starts_with("/low")
                && lines[4].starts_with("/none"),
            "{table}"
        );
        assert!(
            lines[1].contains(">99999") && lines[1].contains(" 1500 "),
            "{table}"
        );
        assert!(
            lines[2].contains("250.5") && lines[2].contains("5.5M") && lines[4].contains(" - ")
        );
        for line in &lines {
            assert!(line.chars().count() <= 80, "{line:?} is wider than 80");
        }
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(
            widths.windows(2).all(|w| w[0] == w[1]),
            "aligned: {widths:?}"
        );
    }

    #[test]
    fn rows_a_pass_would_hold_back_are_marked_and_explained() {
        let mut rows = vec![
            row("/complete", Some(2.0)),
            Row {
                incomplete: true,
                ..row("/held", None)
            },
        ];
        let table = render_table(&mut rows);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("/complete "), "{table}");
        assert!(lines[2].starts_with("*/held "), "{table}");
        assert_eq!(lines[3], INCOMPLETE_NOTE.trim_end());
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
        let marked = Row::from_json(br#"{"appname":"/a","incomplete":true}"#).expect("parses");
        assert!(marked.incomplete);
        let plain = Row::from_json(br#"{"appname":"/a"}"#).expect("parses");
        assert!(!plain.incomplete);
    }

    #[test]
    fn helpers() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(5105614848), "4.8G");
        assert_eq!(human_bytes(1023 * 1024 + 1000), "1024K");
        assert_eq!(human_bytes(700 * 1024 * 1024), "700M");
        assert_eq!(human_bytes(u64::MAX), "16E");
        assert_eq!(percent(Some(250.55), 6), "250.6");
        assert_eq!(percent(Some(12345.6), 6), "12346");
        assert_eq!(percent(Some(1e9), 6), ">99999");
        assert_eq!(percent(Some(100.0), 5), "100.0");
        assert_eq!(percent(None, 5), "-");
        assert_eq!(shorten("abcdefghij", 5), "ab…ij");
        assert_eq!(shorten("abc", 5), "abc");
        let doc = br#"{"appname":"/a","taskname":"t","host":"h","cpu_pct":3.5,"mem_bytes":10}"#;
        let r = Row::from_json(doc).expect("parses");
        assert_eq!(
            (r.cpu_pct, r.mem_bytes, r.thr_pct),
            (Some(3.5), Some(10), None)
        );
    }
}
