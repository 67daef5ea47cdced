//! Session stores: Redis (standalone or cluster) and process memory.

mod memory;
mod redis;

pub use self::memory::MemorySessionStore;
pub use self::redis::RedisSessionStore;
