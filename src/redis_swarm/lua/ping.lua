-- ping: the server's time, through the script path (checks that scripts run).
-- flags: no-writes
-- KEYS: none
-- ARGV[1]: now override (0 = server time)
return now_ms(ARGV[1])
