-- wrk script for the etcd peer benchmark (bench/etcd_peer.ts): every request is a put of a
-- 100-byte value through etcd's JSON gateway (POST /v3/kv/put, key and value base64), the same
-- payload size as the kimberlite benchmark's events. At the end it prints one JSON line with the
-- request count, errors and latency percentiles in microseconds.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- "key" = base64("bench-key"); the value is base64 of 100 bytes of "x" (136 characters).
wrk.body = '{"key":"YmVuY2gta2V5","value":"' .. string.rep("eHh4", 33) .. 'eA=="}'

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration,
    errors.status + errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
