--#include _tasks
--#include _report
-- task_report_unleased: a report from outside any lease (a shard recording what a worker it
-- ran itself found), with task_report's KEYS, ARGV and replies but ARGV[5] always '' (a token
-- is refused: a leased report goes through task_report). It completes any open task no live
-- lease holds, so Redis's ACL gives its function to shards, coordinators and admins, never to
-- a worker (docs/security.md). The body is _report's report_task.
return report_task(KEYS, ARGV, true)
