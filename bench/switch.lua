-- wrk script for bench/switch: counts which version answered each request, so
-- the run shows that traffic really moved between v1 and v2.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    v1, v2, other = 0, 0, 0
end

function response(status, headers, body)
    if body == "hello from v1\n" then
        v1 = v1 + 1
    elseif body == "hello from v2\n" then
        v2 = v2 + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local a, b, c = 0, 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("v1")
        b = b + t:get("v2")
        c = c + t:get("other")
    end
    io.write(string.format("versions: v1 %d v2 %d other %d\n", a, b, c))
end
