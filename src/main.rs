//! The `asgard-stats` binary: the command is the library's [`asgard_stats::run`].

fn main() {
    std::process::exit(asgard_stats::run());
}
