//! Who a task is assigned to: Dastra user ids resolved from e-mails (`GET …/Users?q=`) and team
//! `ref`s (`GET …/Teams?ref=` then `GET …/Teams/{id}`), cached per client. The lookups are ordinary
//! requests of the client (same quota, same metrics); the cache is bounded and its entries expire,
//! so a user whose account changes is found again. Misses are not cached: a user invited after an
//! event went to the DLQ is found when the event is replayed.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::DastraClient;
use super::resources::{ListQuery, Teams};
use crate::error::DastraError;

/// How long a resolution is trusted.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(300);
/// Most resolutions kept (the oldest is dropped beyond).
pub const DIRECTORY_CAPACITY: usize = 1024;

/// A resolution and the requests it cost (0 when cached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<T> {
    /// The answer (`None`: Dastra has no such user / team, or the team has no member).
    pub value: Option<T>,
    /// Requests sent to find it.
    pub requests: u32,
}

/// A team's assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamAssignee {
    /// The team's id.
    pub team_id: i32,
    /// Its first member (`None` when the team has no member).
    pub user_id: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Email(String),
    Team(String),
}

#[derive(Debug, Clone, Copy)]
enum Value {
    User(i32),
    Team(TeamAssignee),
}

/// The cache (one per client, shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Directory {
    entries: Mutex<HashMap<Key, (Value, Instant)>>,
}

impl Directory {
    fn get(&self, key: &Key) -> Option<Value> {
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some((v, at)) if at.elapsed() < DIRECTORY_TTL => Some(*v),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: Key, value: Value) {
        let mut entries = self.entries.lock();
        if entries.len() >= DIRECTORY_CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, (_, at)| at.elapsed() < DIRECTORY_TTL);
            if entries.len() >= DIRECTORY_CAPACITY
                && let Some(oldest) = entries.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Entries held (for tests).
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

impl DastraClient {
    /// The id of the workspace user whose e-mail is `email` (exact, case-insensitive match among
    /// the answers of `GET …/Users?q=<email>`).
    pub async fn user_by_email(&self, email: &str) -> Result<Resolved<i32>, DastraError> {
        let email = email.trim().to_lowercase();
        let key = Key::Email(email.clone());
        if let Some(Value::User(id)) = self.inner.directory.get(&key) {
            return Ok(Resolved { value: Some(id), requests: 0 });
        }
        let found = self.search_users(&email).await?;
        let id = found
            .iter()
            .filter(|u| u.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(&email)))
            .find_map(|u| u.id);
        if let Some(id) = id {
            self.inner.directory.put(key, Value::User(id));
        }
        Ok(Resolved { value: id, requests: 1 })
    }

    /// The team whose `ref` is `team_ref` and its first member (`GET …/Teams?ref=`, exact match,
    /// then `GET …/Teams/{id}` for the members: the list items carry none).
    pub async fn team_by_ref(&self, team_ref: &str) -> Result<Resolved<TeamAssignee>, DastraError> {
        let key = Key::Team(team_ref.to_owned());
        if let Some(Value::Team(t)) = self.inner.directory.get(&key) {
            return Ok(Resolved { value: Some(t), requests: 0 });
        }
        let query = ListQuery { params: vec![("ref".to_owned(), team_ref.to_owned())], ..ListQuery::default() };
        let listed = self.list::<Teams>(&query).await?;
        let Some(team_id) = listed.items.iter().filter(|t| t.r#ref.as_deref() == Some(team_ref)).find_map(|t| t.id)
        else {
            return Ok(Resolved { value: None, requests: 1 });
        };
        let team = self.get::<Teams>(&team_id).await?;
        let user_id = team.users.as_ref().and_then(|u| u.first().copied());
        let value = TeamAssignee { team_id, user_id };
        if user_id.is_some() {
            self.inner.directory.put(key, Value::Team(value));
        }
        Ok(Resolved { value: Some(value), requests: 2 })
    }

    /// Resolutions cached now (for tests and `/status`).
    pub fn directory_len(&self) -> usize {
        self.inner.directory.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_the_cache_stays_bounded() {
        let d = Directory::default();
        d.put(Key::Email("a@x".into()), Value::User(1));
        assert!(matches!(d.get(&Key::Email("a@x".into())), Some(Value::User(1))));
        tokio::time::advance(DIRECTORY_TTL + Duration::from_secs(1)).await;
        assert!(d.get(&Key::Email("a@x".into())).is_none(), "expired");
        for i in 0..(DIRECTORY_CAPACITY + 10) {
            d.put(Key::Email(format!("{i}@x")), Value::User(i as i32));
        }
        assert_eq!(d.len(), DIRECTORY_CAPACITY);
        assert!(d.get(&Key::Email(format!("{}@x", DIRECTORY_CAPACITY + 9))).is_some(), "newest kept");
    }
}
