// Cost of the traffic-split slot per request, against a route without one. Built from the real
// sources (SplitTable.swift, TrafficSplit.swift, RequestID.swift) by bench/split-bench.sh.
#if canImport(Glibc)
import Glibc
#endif

@inline(never) func blackHole(_ x: Int) { if x == Int.min { print(x) } }

func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// What RequestFlow.action does for the pool: the route's pool, or the split's choice.
@inline(never)
func pickPool(_ split: SplitTable?, _ pool: Int, _ override: UInt64?) -> Int {
    if let split {
        let draw = override ?? ThreadRandom.next()
        return split.bands[TrafficSplit.choose(split, draw: draw)].pool
    }
    return pool
}

let twoWay = SplitTable(pools: [0, 1], names: ["stable", "canary"], weights: [90, 10])!
let fourWay = SplitTable(pools: [0, 1, 2, 3], names: ["a", "b", "c", "d"], weights: [40, 30, 20, 10])!
let args = CommandLine.arguments

if args.count == 3, let n = Int(args[2]) {
    // One mode, n decisions: for callgrind (bench/split-bench.sh --callgrind).
    let table: SplitTable? = args[1] == "plain" ? nil : args[1] == "four" ? fourWay : twoWay
    let given = args[1] == "given"
    var acc = 0
    for i in 0..<n { acc &+= pickPool(table, i & 1, given ? UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 : nil) }
    blackHole(acc)
    exit(0)
}

let n = 50_000_000
var results: [(String, [Double])] = []
for (name, mode) in [("plain route (no split)", "plain"), ("two-way split 90/10", "two"), ("four-way split", "four"),
                     ("two-way split, draw given (no generator)", "given")] {
    let table: SplitTable? = mode == "plain" ? nil : mode == "four" ? fourWay : twoWay
    let given = mode == "given"
    var runs: [Double] = []
    for _ in 0..<7 {
        var acc = 0
        let t0 = nowNs()
        for i in 0..<n { acc &+= pickPool(table, i & 1, given ? UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 : nil) }
        let t1 = nowNs()
        blackHole(acc)
        runs.append(Double(t1 - t0) / Double(n))
    }
    runs.sort()
    results.append((name, runs))
}
// Spread check: the two-way split's share of canary over 10M draws.
var canary = 0
for _ in 0..<10_000_000 where pickPool(twoWay, 0, nil) == 1 { canary += 1 }
for (name, runs) in results {
    print("\(name): median \((runs[3] * 100).rounded() / 100) ns per decision (min \((runs[0] * 100).rounded() / 100))")
}
print("canary share over 10M draws: \(Double(canary) / 100_000)%")
