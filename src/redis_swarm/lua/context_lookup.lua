-- context_lookup: what a publish needs to know before it sends anything: the owner's
-- current manifest, and the manifest of the version being published if it is kept. It
-- reads, as two HGETs would; it is a function of its own so that only a user who may publish
-- (a shard's, not a worker's: docs/security.md) can run it. A publish whose version is
-- current already writes nothing, so without this the ACL would never refuse a worker's
-- republish, and the worker would be told it published.
-- flags: no-writes
-- KEYS[1]: contexts (HASH owner -> manifest of the current version: the pointer)
-- KEYS[2]: context_manifests (HASH owner|version -> manifest of every kept version)
-- ARGV[1]: owner   ARGV[2]: the version being published
-- returns {current manifest or false, the version's kept manifest or false}
local owner = ARGV[1]
return {
  redis.call('HGET', KEYS[1], owner),
  redis.call('HGET', KEYS[2], owner .. '|' .. ARGV[2]),
}
