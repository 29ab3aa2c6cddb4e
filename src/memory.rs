//! The large buffers a run holds: the parts of uploads into a bucket, and scrypt's memory when
//! a passphrase encrypts or opens a file. Everything else aimem holds is small; these two are
//! what could take a run past its 64 MiB target, so both are bounded here for the whole
//! process, however many files are streamed at once.
//!
//! - Parts: at most [`PARTS`] buffers of [`PART`] bytes exist, made on first need and then
//!   handed from upload to upload, never freed. (A freed block of megabytes stays in the allocator of
//!   the thread that freed it, still resident, so a pool that freed and made buffers again
//!   would grow past its bound in resident memory.) A part of another size, for an object so
//!   large that 10,000 usual parts do not hold it, is made and freed on its own, and waits
//!   until no pooled part is out.
//! - scrypt: one at a time, 32 MiB, which the allocator takes from and gives back to the
//!   system directly (blocks that large are mapped, not pooled).
//!
//! A thread asks for a part only while it holds none (a full part travels to its uploader,
//! which gives it back), so waiting never keeps a part from coming back.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The usual part: a little over S3's smallest (5 MiB, all parts but the last).
pub const PART: usize = 6 * 1024 * 1024;

/// Parts in memory at once: one filling and one uploading, whatever the number of files.
/// With scrypt's 32 MiB beside them and aimem's own few MiB, a run stays under 64 MiB.
pub const PARTS: usize = 2;

static POOL: Mutex<Pool> = Mutex::new(Pool {
    made: 0,
    idle: Vec::new(),
    odd_out: false,
    next_ticket: 0,
    serving: 0,
});
static GIVEN_BACK: Condvar = Condvar::new();
static SCRYPT_TURN: Mutex<()> = Mutex::new(());

struct Pool {
    /// Pooled buffers made so far (at most [`PARTS`]).
    made: usize,
    /// Pooled buffers not in use.
    idle: Vec<Vec<u8>>,
    /// A part of another size is out.
    odd_out: bool,
    /// Requests are served in the order they came (a transfer kept waiting too long would
    /// leave its Qdrant stream idle): the next ticket to hand out, and the one served next.
    next_ticket: u64,
    serving: u64,
}

impl Pool {
    fn in_use(&self) -> usize {
        self.made - self.idle.len()
    }
}

fn pool() -> MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait(pool: MutexGuard<'static, Pool>) -> MutexGuard<'static, Pool> {
    GIVEN_BACK
        .wait(pool)
        .unwrap_or_else(PoisonError::into_inner)
}

/// A part buffer, empty when handed out; given back when dropped.
pub struct PartBuffer {
    bytes: Vec<u8>,
    pooled: bool,
}

/// Waits for an empty buffer with room for `capacity` bytes, in turn. A part of another size
/// waits until no pooled part is out (its caller holds none: see the module's comment).
pub fn part_buffer(capacity: usize) -> PartBuffer {
    let mut pool = pool();
    let ticket = pool.next_ticket;
    pool.next_ticket += 1;
    loop {
        if ticket == pool.serving
            && let Some(part) = pool.hand_out(capacity)
        {
            pool.serving += 1;
            drop(pool);
            // The next in line may be served at once.
            GIVEN_BACK.notify_all();
            return part;
        }
        pool = wait(pool);
    }
}

impl Pool {
    /// A buffer of `capacity` bytes if one can be had now.
    fn hand_out(&mut self, capacity: usize) -> Option<PartBuffer> {
        if self.odd_out {
            return None;
        }
        if capacity != PART {
            if self.in_use() > 0 {
                return None;
            }
            self.odd_out = true;
            return Some(PartBuffer {
                bytes: Vec::with_capacity(capacity),
                pooled: false,
            });
        }
        if let Some(bytes) = self.idle.pop() {
            return Some(PartBuffer {
                bytes,
                pooled: true,
            });
        }
        if self.made < PARTS {
            self.made += 1;
            return Some(PartBuffer {
                bytes: Vec::with_capacity(PART),
                pooled: true,
            });
        }
        None
    }
}

impl Deref for PartBuffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for PartBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Drop for PartBuffer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        let mut pool = pool();
        if self.pooled {
            bytes.clear();
            pool.idle.push(bytes);
        } else {
            pool.odd_out = false;
            drop(bytes);
        }
        drop(pool);
        GIVEN_BACK.notify_all();
    }
}

/// Runs `kdf` (a scrypt) when no other one runs.
pub fn one_scrypt_at_a_time<T>(kdf: impl FnOnce() -> T) -> T {
    let _turn = SCRYPT_TURN.lock().unwrap_or_else(PoisonError::into_inner);
    kdf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Many threads taking parts at once: each gets its turn, and no more than the pool's
    /// buffers are ever made.
    #[test]
    fn parts_are_shared_by_every_thread_and_never_more_are_made() {
        let out = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u8)
            .map(|n| {
                let (out, most) = (Arc::clone(&out), Arc::clone(&most));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let mut part = part_buffer(PART);
                        assert!(part.is_empty() && part.capacity() >= PART);
                        part.extend_from_slice(&[n; 1024]);
                        most.fetch_max(out.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        std::thread::yield_now();
                        out.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= PARTS);
        assert!(pool().made <= PARTS);
    }
}
