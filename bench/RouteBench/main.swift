// Route benchmark: compile time and routing cost per request of the compiled router at 10,
// 1,000 and 10,000 realistic routes. Run in a release build:
//
//     swift build -c release --product prox-routebench && .build/release/prox-routebench
//
// Targets (the issue): under 1 microsecond per request at 10,000 routes; compile under 1 s.

import ProxCore
import ProxRegex

/// Realistic routes: a few exact hosts, wildcard hosts and host regexes; mostly exact and prefix
/// paths; ~10% regex paths (most anchored under a literal prefix, some unanchored); some
/// header predicates and method restrictions. Route 0 and the last route are known targets.
let exactHosts = ["api.example.com", "www.example.com", "admin.example.com", "shop.example.net"]
let wildcards = [".cdn.example.com", ".example.org"]
let hostRegex = try! Regex("^(?:[a-z0-9-]+\\.tenant\\.example\\.io)\\z")

func hosts(_ i: Int) -> [HostPattern] {
    switch i % 10 {
    case 0...5: return [.exact(exactHosts[i % exactHosts.count])]
    case 6, 7: return [.wildcard(suffix: wildcards[i % wildcards.count])]
    case 8: return [.regex(hostRegex)]
    default: return [.exact(exactHosts[(i / 10) % exactHosts.count]), .exact("alt\(i % 3).example.com")]
    }
}

/// A host that route `i` accepts.
func host(_ i: Int) -> String {
    switch hosts(i)[0] {
    case .exact(let h): return h
    case .wildcard(let s): return "img" + s
    case .regex: return "acme.tenant.example.io"
    }
}

func makeRoutes(_ n: Int) -> [RouteMatchSpec] {
    var specs: [RouteMatchSpec] = []
    specs.reserveCapacity(n)
    for i in 0..<n {
        var s = RouteMatchSpec()
        s.hosts = hosts(i)
        switch i % 20 {
        case 0 where i > 0:
            s.path = .regex(try! Regex("^/api/v2/res\(i)/[0-9]+$"))
        case 1:
            s.path = .regex(try! Regex(i % 40 == 1 ? "/res\(i)/[a-z]+\\.json$" : "^/files/f\(i)/.+\\.(?:png|jpg)$"))
        case 2...11, 0:
            s.path = .exact("/api/v1/res\(i)/items")
        default:
            s.path = .prefix("/static/app\(i)/")
        }
        if i % 20 == 5 { s.predicates = [ValuePredicate(.header(HeaderName("X-Tenant")), .exact("t\(i)"))] }
        if i % 20 == 7 { s.methods = [.get, .head] }
        specs.append(s)
    }
    if n > 1 {
        specs[n - 1] = RouteMatchSpec(hosts: [.exact("www.example.com")], path: .exact("/last/route"))
    }
    return specs
}

struct Probe {
    let name: String
    let head: RequestHead
}

func probes(_ n: Int) -> [Probe] {
    func h(_ host: String, _ target: String, _ headers: [(String, String)] = []) -> RequestHead {
        RequestHead.make(method: .get, target: target, headers: [("Host", host)] + headers)
    }
    // A regex route near the middle (anchored, filed under its literal prefix), and an unanchored one.
    let mid = max(20, (n / 2) / 20 * 20)
    let unanchored = max(1, (n / 2) / 40 * 40 + 1)
    let prefixRoute = n / 2 / 20 * 20 + 16
    var out = [
        Probe(name: "first route", head: h(host(0), "/api/v1/res0/items")),
        Probe(name: "last route", head: h("www.example.com", "/last/route")),
        Probe(name: "no match", head: h("api.example.com", "/nothing/here/at/all?x=1")),
        // The host that holds every unanchored regex route: all of them are tried.
        Probe(name: "no match, regex-heavy host", head: h(host(1), "/nothing/res12/abc.txt")),
        Probe(name: "regex route", head: h(host(mid), "/api/v2/res\(mid)/12345")),
        Probe(name: "unanchored regex", head: h(host(unanchored), "/x/res\(unanchored)/abc.json")),
        Probe(name: "wildcard host", head: h(host(prefixRoute), "/static/app\(prefixRoute)/logo.png")),
    ]
    if n < 20 { out.removeAll { $0.name == "regex route" || $0.name == "unanchored regex" } }
    return out
}

let clock = ContinuousClock()
var sink = 0

func nanoseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s[s.count / 2]
}

/// Median over `runs` of the mean cost of one `match` call, in nanoseconds. On the main actor,
/// like the top-level code that calls it and the `sink` it writes: the benchmark is one thread.
@MainActor
func measure(runs: Int = 7, _ body: () -> Int) -> Double {
    // Size the loop to ~20 ms.
    var iterations = 1
    while true {
        let t = clock.measure { for _ in 0..<iterations { sink &+= body() } }
        if nanoseconds(t) > 2e7 || iterations >= 1 << 24 { break }
        iterations *= 2
    }
    var samples: [Double] = []
    for _ in 0..<runs {
        let t = clock.measure { for _ in 0..<iterations { sink &+= body() } }
        samples.append(nanoseconds(t) / Double(iterations))
    }
    return median(samples)
}

func fmt(_ x: Double) -> String {
    if x >= 10_000 { return "\(Int(x / 1000)) us" }
    if x >= 1000 { return "\(Double(Int(x / 10)) / 100) us" }
    return "\(Int(x.rounded())) ns"
}

print("# Prox route benchmark\n")
var rows: [String] = []
var summaries: [String] = []
var names: [String] = []
for n in [10, 1_000, 10_000] {
    var specs: [RouteMatchSpec] = []
    let specTime = nanoseconds(clock.measure { specs = makeRoutes(n) })
    var compileTimes: [Double] = []
    var router: Router! = nil
    for _ in 0..<3 {
        let t = clock.measure { router = try! Router(specs) }
        compileTimes.append(nanoseconds(t))
    }
    summaries.append(router.summary)
    let reference = ReferenceRouter(specs)
    var cells: [String] = []
    let ps = probes(n)
    if names.isEmpty { names = probes(1_000).map(\.name) }
    for name in names {
        guard let p = ps.first(where: { $0.name == name }) else { cells.append("-"); continue }
        let got = router.match(p.head, listener: 0)
        let want = reference.match(p.head, listener: 0)
        precondition(got == want, "router and reference disagree on \(name): \(String(describing: got)) vs \(String(describing: want))")
        let ns = measure { router.match(p.head, listener: 0)?.routeIndex ?? -1 }
        let refNs = measure(runs: 3) { reference.match(p.head, listener: 0)?.routeIndex ?? -1 }
        cells.append("\(fmt(ns)) (ref \(fmt(refNs)); route \(got.map { "\($0.routeIndex)" } ?? "none"))")
    }
    rows.append("| \(n) | \(fmt(median(compileTimes))) | \(fmt(specTime)) | " + cells.joined(separator: " | ") + " |")
}
print("| routes | compile | specs + regexes | " + names.joined(separator: " | ") + " |")
print("|---:|---:|---:|" + names.map { _ in "---:" }.joined(separator: "|") + "|")
for r in rows { print(r) }
print("\nPer request: median of 7 runs of the mean over a ~20 ms loop; `ref` is the naive in-order ReferenceRouter.")
print("Compile: median of 3 `Router(specs)` calls. The regexes in the specs are compiled (and JIT'd) beforehand, as the")
print("config compiler does: `specs + regexes` is that step, once.\n")
for (n, s) in zip([10, 1_000, 10_000], summaries) { print("- \(n): \(s)") }
if sink == 42 { print("") }
