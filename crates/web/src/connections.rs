//! The per-user connection cap of the live sockets (`/api/v1/ws` and `/graphql/ws` share one
//! counter, so a user's sockets on both endpoints count together).
//!
//! Each open socket costs the server a task, a broadcast receiver and a heartbeat, so one user
//! (or one stolen token) opening thousands of them is a cheap way to exhaust it. Each socket
//! protocol asks for a permit right after authentication and holds it until the connection is
//! over; without one it closes with 4429.
//!
//! The permit is a guard, not a number to give back: it is released by being dropped, so every
//! way a connection can end — the protocol returning, its future dropped mid-connection by an
//! aborted task or a server shutting down, a panic unwinding through it — frees the place. A
//! count the caller had to decrement by hand would leak a place on every path that forgot to.
//!
//! [`ConnectionCounter`] counts the connections of this process. Behind a load balancer with
//! several instances, a user may hold up to `max_per_user` connections on each of them: the cap
//! bounds what one user costs one instance, which is what it protects.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

/// How many sockets each user has open, with a cap. Cheap to clone: the clones share one count.
///
/// ```
/// use bulwark_web::connections::ConnectionCounter;
/// use uuid::Uuid;
///
/// let counter = ConnectionCounter::new(2);
/// let user = Uuid::from_u128(1);
/// let first = counter.admit(user).expect("one of two");
/// let _second = counter.admit(user).expect("two of two");
/// assert!(counter.admit(user).is_none(), "a third is refused");
/// drop(first);
/// assert!(counter.admit(user).is_some(), "closing one makes room");
/// ```
#[derive(Clone)]
pub struct ConnectionCounter {
    shared: Arc<Shared>,
}

struct Shared {
    max_per_user: usize,
    /// Users with at least one connection; a user whose last one closes is removed, so the map
    /// holds the users connected now and never grows with the users seen so far.
    open: Mutex<HashMap<Uuid, usize>>,
}

impl ConnectionCounter {
    /// A counter allowing each user `max_per_user` sockets at once (0 refuses everyone).
    #[must_use]
    pub fn new(max_per_user: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_per_user,
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A place for one more socket of `user_id`, held until the permit is dropped; `None` if the
    /// user already has `max_per_user`.
    #[must_use]
    pub fn admit(&self, user_id: Uuid) -> Option<ConnectionPermit> {
        let mut open = self.lock();
        let count = open.get(&user_id).copied().unwrap_or(0);
        if count >= self.shared.max_per_user {
            return None;
        }
        // `count < max_per_user <= usize::MAX`: this cannot overflow.
        open.insert(user_id, count + 1);
        Some(ConnectionPermit {
            counter: self.clone(),
            user_id,
        })
    }

    /// How many permits `user_id` holds now.
    #[must_use]
    pub fn open_for(&self, user_id: Uuid) -> usize {
        self.lock().get(&user_id).copied().unwrap_or(0)
    }

    /// How many sockets are open now, all users together (a metrics gauge).
    #[must_use]
    pub fn total(&self) -> usize {
        self.lock().values().sum()
    }

    /// The most sockets one user may hold.
    #[must_use]
    pub fn max_per_user(&self) -> usize {
        self.shared.max_per_user
    }

    /// The counts. A poisoned lock is taken over rather than propagated: no code holding it can
    /// panic halfway through an update (each is one insert or one removal), so the map is sound,
    /// and refusing every connection forever after would be the worse failure.
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, usize>> {
        self.shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, user_id: Uuid) {
        let mut open = self.lock();
        if let Entry::Occupied(mut entry) = open.entry(user_id) {
            if *entry.get() <= 1 {
                entry.remove();
            } else {
                *entry.get_mut() -= 1;
            }
        }
    }
}

impl fmt::Debug for ConnectionCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user ids stay out of logs; how many users are connected is enough.
        f.debug_struct("ConnectionCounter")
            .field("max_per_user", &self.shared.max_per_user)
            .field("users_connected", &self.lock().len())
            .finish()
    }
}

/// One user's place in a [`ConnectionCounter`], given back when dropped.
#[must_use = "the place is given back as soon as the permit is dropped"]
pub struct ConnectionPermit {
    counter: ConnectionCounter,
    user_id: Uuid,
}

impl ConnectionPermit {
    /// The user the place belongs to.
    #[must_use]
    pub const fn user_id(&self) -> Uuid {
        self.user_id
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counter.release(self.user_id);
    }
}

impl fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;

    use super::*;

    fn user(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_connection_over_the_cap_is_refused() {
        let counter = ConnectionCounter::new(3);

        let permits: Vec<_> = (0..3).map(|_| counter.admit(user(1))).collect();

        assert!(permits.iter().all(Option::is_some));
        assert!(
            counter.admit(user(1)).is_none(),
            "the fourth is one too many"
        );
        assert_eq!(counter.open_for(user(1)), 3, "a refusal takes no place");
    }

    #[test]
    fn dropping_a_permit_frees_its_place() {
        let counter = ConnectionCounter::new(2);
        let first = counter.admit(user(1));
        let second = counter.admit(user(1));
        assert!(counter.admit(user(1)).is_none());

        drop(first);

        assert_eq!(counter.open_for(user(1)), 1);
        let third = counter.admit(user(1));
        assert!(third.is_some());
        assert!(counter.admit(user(1)).is_none());
        drop((second, third));
        assert_eq!(counter.open_for(user(1)), 0);
    }

    #[test]
    fn users_are_counted_apart() {
        let counter = ConnectionCounter::new(1);
        let _first = counter.admit(user(1));

        assert!(counter.admit(user(2)).is_some());
        assert!(counter.admit(user(1)).is_none());
    }

    #[test]
    fn a_user_whose_last_connection_closes_leaves_the_map() {
        let counter = ConnectionCounter::new(2);
        let permits = [counter.admit(user(1)), counter.admit(user(2))];
        assert_eq!(counter.lock().len(), 2);

        drop(permits);

        assert!(counter.lock().is_empty());
    }

    #[test]
    fn clones_share_one_count() {
        let counter = ConnectionCounter::new(1);
        let clone = counter.clone();
        let _permit = counter.admit(user(1));

        assert!(clone.admit(user(1)).is_none());
        assert_eq!(clone.open_for(user(1)), 1);
    }

    #[test]
    fn a_cap_of_zero_refuses_everyone_and_records_nothing() {
        let counter = ConnectionCounter::new(0);

        assert!(counter.admit(user(1)).is_none());
        assert!(counter.lock().is_empty());
    }

    #[test]
    fn a_boxed_permit_still_frees_its_place_when_dropped() {
        // What a `Gatekeeper` hands to `serve`.
        let counter = ConnectionCounter::new(1);
        let boxed: Option<Box<dyn Any + Send>> = counter
            .admit(user(1))
            .map(|permit| Box::new(permit) as Box<dyn Any + Send>);
        assert!(boxed.is_some());
        assert!(counter.admit(user(1)).is_none());

        drop(boxed);

        assert!(counter.admit(user(1)).is_some());
    }

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let counter = ConnectionCounter::new(1);
        let poisoner = counter.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = poisoner.shared.open.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(counter.shared.open.is_poisoned());

        let permit = counter.admit(user(1));
        assert!(permit.is_some());
        assert!(counter.admit(user(1)).is_none());
        drop(permit);
        assert_eq!(counter.open_for(user(1)), 0);
    }

    #[test]
    fn the_debug_output_names_no_user() {
        let counter = ConnectionCounter::new(4);
        let permit = counter.admit(user(0xABCDEF));
        let id = user(0xABCDEF).to_string();

        let printed = format!("{counter:?}");

        assert!(!printed.contains(&id), "{printed}");
        assert!(printed.contains("users_connected: 1"), "{printed}");
        drop(permit);
    }
}
