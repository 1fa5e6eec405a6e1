//! The repository tells the truth about itself: every `docs/` page a comment or document
//! cites exists, the index lists every page, no comment sends a reader to a document the
//! repository does not hold (the notes the contract was first written in), and
//! the `rust-version` both crates declare is the one the locked dependencies need.
//! Nothing here starts a server: these tests read files and ask `cargo metadata`.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Folders that hold no source of ours: build output, git's own files, editor and tool caches,
/// and `.services` (the test broker's data and the deployment tools' Python venv).
const NOT_OURS: &[&str] = &["target", ".git", "node_modules", ".services"];

/// Every file of the repository worth reading as text, relative to its root.
fn repository_text_files() -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !NOT_OURS.contains(&name) {
                    walk(root, &path, out);
                }
            } else if std::fs::read_to_string(&path).is_ok() && name != "Cargo.lock" {
                out.push(
                    path.strip_prefix(root)
                        .expect("under the root")
                        .to_path_buf(),
                );
            }
        }
    }
    let root = repo_root();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

/// The lines of a file a reader takes as prose: a Rust file's comments (`//`, `///`,
/// `//!`), every line of anything else (Markdown, scripts, manifests, the man page).
fn prose_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(repo_root().join(path)).expect("read as text above");
    let is_rust = path.extension().is_some_and(|e| e == "rs");
    text.lines()
        .enumerate()
        .filter(|(_, line)| !is_rust || line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_string()))
        .collect()
}

/// The paths of `docs/` pages a line names (a name ending in `.md`).
fn cited_pages(line: &str) -> Vec<String> {
    let mut pages = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("docs/") {
        let tail = &rest[at + "docs/".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if let Some(stem) = name.strip_suffix(".md") {
            if !stem.is_empty() {
                pages.push(format!("docs/{stem}.md"));
            }
        }
        rest = tail;
    }
    pages
}

/// The pages under `docs/`, by file name.
fn docs_pages() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/ exists")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn every_docs_page_a_comment_or_document_cites_exists() {
    let mut missing = Vec::new();
    let mut citations = 0;
    for file in repository_text_files() {
        for (line_number, line) in prose_lines(&file) {
            for page in cited_pages(&line) {
                citations += 1;
                if !repo_root().join(&page).is_file() {
                    missing.push(format!("{}:{line_number}: {page}", file.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited pages that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(
        citations >= 10,
        "only {citations} citations of docs/ found: is the scan blind?"
    );
}

#[test]
fn no_comment_sends_the_reader_to_a_document_outside_the_repository() {
    // The contract was first written in notes kept beside the repository and cited by
    // section number; `docs/` now holds it in the project's own words.
    let outside = [
        "design section",
        "design §",
        "design.md",
        "design document",
        "shared notes",
    ];
    let mut found = Vec::new();
    for file in repository_text_files() {
        for (line_number, line) in prose_lines(&file) {
            let lower = line.to_lowercase();
            if outside.iter().any(|phrase| lower.contains(phrase)) {
                found.push(format!("{}:{line_number}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "lines citing a document outside the repository (cite docs/ instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_docs_index_links_every_page_and_every_link_between_pages_resolves() {
    let pages = docs_pages();
    assert!(pages.len() > 5, "docs/ holds only {pages:?}");
    let index = std::fs::read_to_string(repo_root().join("docs/README.md")).expect("the index");
    for page in pages.iter().filter(|p| *p != "README.md") {
        assert!(
            index.contains(&format!("]({page})")),
            "docs/README.md does not link {page}"
        );
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(repo_root().join("docs").join(page)).expect("a page");
        for link in text.split("](").skip(1) {
            let target = link.split([')', '#']).next().unwrap_or("");
            if target.is_empty() || target.contains("://") {
                continue; // a link within the page, or to the web
            }
            if !repo_root().join("docs").join(target).exists() {
                broken.push(format!("docs/{page}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `1.95` and `1.88.0` as comparable numbers.
fn version_key(version: &str) -> (u64, u64, u64) {
    let mut parts = version
        .split('.')
        .map(|p| p.parse::<u64>().expect("a numeric version"));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

#[test]
fn the_declared_rust_version_is_the_one_the_locked_dependencies_need() {
    let cargo = env!("CARGO");
    let version = Command::new(cargo)
        .arg("-vV")
        .output()
        .expect("cargo -vV runs");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names its host")
        .trim()
        .to_string();
    // Only the packages built for this platform: the others (Windows consoles, say) are
    // never built here, and an offline machine does not hold them.
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata --locked --offline failed (is Cargo.lock current?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = metadata["packages"].as_array().expect("packages");

    let mut needs: BTreeMap<(u64, u64, u64), Vec<String>> = BTreeMap::new();
    let mut declared = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or("?");
        let rust_version = package["rust_version"].as_str();
        if members.contains(&package["id"].as_str().unwrap_or("")) {
            declared.push((name.to_string(), rust_version.map(str::to_string)));
        } else if let Some(v) = rust_version {
            let who = format!("{name} {}", package["version"].as_str().unwrap_or("?"));
            needs.entry(version_key(v)).or_default().push(who);
        }
    }
    let (&(major, minor, _), needing) = needs.last_key_value().expect("dependencies declare one");
    let needed = format!("{major}.{minor}");
    assert_eq!(
        declared.len(),
        2,
        "both crates, asgard-stats and mesos-sim: {declared:?}"
    );
    for (name, rust_version) in declared {
        assert_eq!(
            rust_version.as_deref().map(version_key),
            Some(version_key(&needed)),
            "{name} declares rust-version {rust_version:?}; the locked dependencies need {needed} \
             ({}): set [workspace.package] rust-version in Cargo.toml",
            needing.join(", ")
        );
    }
}
