//! Fresh loopback ranges for simulated agents (`ClusterSpec::first_ip`), handed out so that
//! no two clusters share an address: not two in one test process, nor two in test
//! processes running at the same time (several test binaries, several checkouts on one
//! machine). An agent that refuses closes its port; an address of its own makes sure no
//! other test's listener takes that port in the meantime.
//!
//! The 127.1.0.0 - 127.255.255.255 range holds 65,280 blocks of 254 usable addresses
//! (127.a.b.1 to 127.a.b.254). Each process takes its blocks from a region of its own,
//! chosen by its process id: processes started around the same time have nearby ids, so
//! their regions differ. Within the region a counter gives each call fresh blocks.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Usable addresses of one 127.a.b.0/24 block: .0 and .255 are skipped (see `agent_ips`).
const ADDRESSES_PER_BLOCK: usize = 254;
/// Blocks in 127.1.0.0 - 127.255.255.0 (127.0.x.y stays for masters and other services).
const BLOCKS: usize = 255 * 256;
/// Blocks of one process's region: room for many clusters of a few hundred agents.
const BLOCKS_PER_REGION: usize = 64;
const REGIONS: usize = BLOCKS / BLOCKS_PER_REGION;

/// The first address (`[a, b, 1]` for 127.a.b.1) of fresh consecutive blocks holding
/// `addresses` addresses, for `ClusterSpec::first_ip`. A region used up starts over at
/// its beginning (by then the first clusters of the process are long gone).
///
/// # Panics
/// When `addresses` needs more blocks than one region holds (16,256 addresses).
pub fn fresh_first_ip(addresses: usize) -> [u8; 3] {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let blocks = addresses.div_ceil(ADDRESSES_PER_BLOCK).max(1);
    assert!(
        blocks <= BLOCKS_PER_REGION,
        "{addresses} loopback addresses do not fit in one region"
    );
    // A range must not run past the region's end: skip the region's tail instead.
    let taken = NEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
            let start = next % BLOCKS_PER_REGION;
            let skipped = if start + blocks > BLOCKS_PER_REGION {
                BLOCKS_PER_REGION - start
            } else {
                0
            };
            Some(next + skipped + blocks)
        })
        .unwrap_or_else(|previous| previous);
    let start = match taken % BLOCKS_PER_REGION {
        start if start + blocks > BLOCKS_PER_REGION => 0,
        start => start,
    };
    let region = std::process::id() as usize % REGIONS;
    let block = region * BLOCKS_PER_REGION + start;
    // block < BLOCKS = 255 * 256, so both octets fit in a u8.
    let [_, _, high, low] = u32::try_from(block).unwrap_or(0).to_be_bytes();
    [high + 1, low, 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_never_overlap_within_a_region() {
        let mut seen = std::collections::HashSet::new();
        for addresses in [1, 254, 255, 600, 3, 1000, 2] {
            let [a, b, c] = fresh_first_ip(addresses);
            assert_eq!(c, 1);
            assert!(a >= 1, "127.0.x.y stays free");
            let first = usize::from(a) * 256 + usize::from(b);
            for block in first..first + addresses.div_ceil(ADDRESSES_PER_BLOCK) {
                assert!(seen.insert(block), "block {block} handed out twice");
            }
        }
    }
}
