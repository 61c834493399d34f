-- 1 MiB POST body (URL path /upload) (the app reads it all and answers its length).
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
