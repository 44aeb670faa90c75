//! Fixed-size buffer pools. Taking blocks when every buffer is in flight,
//! which is also how a slow stage pushes back on a fast one.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

/// A pool of `T`s that come back when dropped.
pub struct Pool<T> {
    home: Sender<T>,
    free: Receiver<T>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Self {
            home: self.home.clone(),
            free: self.free.clone(),
        }
    }
}

impl<T> Pool<T> {
    pub fn new(items: impl IntoIterator<Item = T>) -> Self {
        let items: Vec<T> = items.into_iter().collect();
        let (home, free) = bounded(items.len().max(1));
        for it in items {
            home.send(it).expect("pool channel sized for its items");
        }
        Self { home, free }
    }

    /// A free item if there is one now.
    pub fn try_take(&self) -> Option<Pooled<T>> {
        self.free.try_recv().ok().map(|item| Pooled {
            item: Some(item),
            home: self.home.clone(),
        })
    }

    /// Waits for a free item; `None` once `cancel` is set.
    pub fn take(&self, cancel: &AtomicBool) -> Option<Pooled<T>> {
        loop {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            match self.free.recv_timeout(Duration::from_millis(100)) {
                Ok(item) => {
                    return Some(Pooled {
                        item: Some(item),
                        home: self.home.clone(),
                    })
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

/// An item on loan from a [`Pool`].
pub struct Pooled<T> {
    item: Option<T>,
    home: Sender<T>,
}

impl<T> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.item.as_ref().expect("present until drop")
    }
}

impl<T> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("present until drop")
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(it) = self.item.take() {
            // The pool may be gone at shutdown; then the item is just freed.
            let _ = self.home.try_send(it);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_return_on_drop_and_take_blocks_until_then() {
        let pool = Pool::new(vec![vec![0u8; 4]]);
        let cancel = AtomicBool::new(false);
        let mut a = pool.take(&cancel).unwrap();
        a[0] = 7;
        let p2 = pool.clone();
        let waiter = std::thread::spawn(move || {
            let c = AtomicBool::new(false);
            p2.take(&c).unwrap()[0]
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "second take waits while the only buffer is out"
        );
        drop(a);
        assert_eq!(waiter.join().unwrap(), 7, "the same buffer comes back");
    }

    #[test]
    fn cancel_unblocks_take() {
        let pool = Pool::new(vec![1u32]);
        let cancel = AtomicBool::new(false);
        let _held = pool.take(&cancel).unwrap();
        cancel.store(true, Ordering::Relaxed);
        assert!(pool.take(&cancel).is_none());
    }
}
