import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import ProxCore
import ProxUpstream

/// `prox diff`'s behavioural half: which requests change outcome between two compiled configs.
///
/// A corpus is derived from both configs' match specs (`RequestCorpus`), optionally extended with
/// requests the user gives, and every request runs through both snapshots with the real parser,
/// router and chain in dry-run mode (`DryRun.run`, nothing sent). Requests whose route, local
/// answer, chain, pool, upstream target or upstream headers differ are grouped by what changed.
public enum BehaviourDiff {
    /// What one snapshot does with one request, reduced to what a reviewer compares.
    public struct Outcome: Sendable, Equatable, Codable {
        /// The route that matched; nil: none (404 `no_route`).
        public var route: String?
        /// `proxy`, or the local answer: `404`, `301 https://example.com/`.
        public var answer: String
        /// The stages that ran, in order, as the trace names them.
        public var chain: [String]
        public var pool: String?
        /// The upstream request line and Host: `GET /v2/users (Host: api.internal)`.
        public var upstream: String?
        /// Upstream request headers other than Host, `Name: value`; generated ids are masked.
        public var headers: [String]

        public static func failed(_ why: String) -> Outcome {
            Outcome(route: nil, answer: "invalid request: \(why)", chain: [], pool: nil, upstream: nil, headers: [])
        }
    }

    /// One request of the corpus: what to send and where it came from.
    public struct Probe: Sendable {
        public var request: DryRunRequest
        /// `GET api.example.com/v1/users`, plus the conditions that make it differ from a plain GET.
        public var label: String
        /// `route api-v1 (old)`, `requests.yaml`, `access.log:12`.
        public var source: String

        public init(request: DryRunRequest, label: String, source: String) {
            self.request = request
            self.label = label
            self.source = source
        }
    }

    public struct Change: Sendable, Codable {
        public var request: String
        public var source: String
        /// The range of split draws this applies to, when a traffic split decided: `0.90-0.95`.
        public var draws: String?
        public var old: Outcome
        public var new: Outcome
    }

    /// Requests that changed the same way.
    public struct Group: Sendable, Codable {
        /// `route api-v1 -> api-v2`, `on route web: pool stable -> canary`.
        public var what: String
        /// The fields that differ: route, answer, chain, pool, upstream, headers.
        public var fields: [String]
        public var count: Int
        /// Up to three, in corpus order.
        public var examples: [Change]
    }

    public struct Report: Sendable, Codable {
        /// Requests run (a request a split decides counts once per band of draws).
        public var requests: Int
        public var changed: Int
        public var groups: [Group]
    }

    /// Runs every probe through both snapshots and groups the differences. `unchanged` names
    /// routes whose whole outcome is known to be the same in both configs (the route, its chain,
    /// its pools and every setting it reads are written identically): a request the router
    /// sends to such a route in both is not run through the chain, which keeps a diff of two
    /// 10,000-route configs to a router lookup per request for the routes nobody touched.
    /// `sameServerAndListeners`: the server settings and the listeners are written identically
    /// in both; a request no route takes in either, arriving on the same listener, then gets
    /// the same answer (404 `no_route`) from both, and is not run further either.
    public static func compare(_ probes: [Probe], old: Snapshot, new: Snapshot, unchanged: Set<String> = [],
                               sameServerAndListeners: Bool = false) -> Report {
        var changed = 0
        var groups: [String: Group] = [:]
        var order: [String] = []
        let splitsOld = splits(old), splitsNew = splits(new)

        // Each probe is independent: the corpus is cut into chunks run on every core, and the
        // chunks' findings are folded in corpus order, so the report is the same on any machine.
        typealias Found = (probe: Int, old: Outcome, new: Outcome, draws: String?)
        @Sendable func run(_ range: Range<Int>) -> (runs: Int, found: [Found]) {
            var runs = 0
            var found: [Found] = []
            for i in range {
                let probe = probes[i]
                if !unchanged.isEmpty || sameServerAndListeners, let wire = head(probe.request),
                   let la = listener(probe.request, old), let lb = listener(probe.request, new),
                   let ha = parse(wire, la) {
                    // The same limits parse the same bytes the same way: parsed once for both.
                    let hb = HTTP1Limits(listener: lb) == HTTP1Limits(listener: la) ? ha : parse(wire, lb)
                    if let hb {
                        let ra = route(ha, la, old), rb = route(hb, lb, new)
                        if ra == rb, let id = ra, unchanged.contains(id) {
                            runs += 1
                            continue
                        }
                        if ra == nil, rb == nil, sameServerAndListeners, la.id == lb.id {
                            runs += 1
                            continue
                        }
                    }
                }
                let a = outcome(probe.request, old)
                let b = outcome(probe.request, new)
                // The route does not depend on the draw: the split tables of the routes just
                // found say whether the draw matters.
                let bands = probe.request.random == nil ? splitBands([a.route.flatMap { splitsOld[$0] }, b.route.flatMap { splitsNew[$0] }]) : []
                if bands.isEmpty {
                    runs += 1
                    if a != b { found.append((i, a, b, nil)) }
                } else {
                    for (draw, label) in bands {
                        var r = probe.request
                        r.random = draw
                        let (x, y) = (outcome(r, old), outcome(r, new))
                        runs += 1
                        if x != y { found.append((i, x, y, label)) }
                    }
                }
            }
            return (runs, found)
        }
        let chunks = probes.count < 512 ? 1 : max(1, System.coreCount) * 4
        let size = (probes.count + chunks - 1) / max(chunks, 1)
        let results = ChunkResults<(runs: Int, found: [Found])>(count: chunks)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = min(c * size, probes.count), hi = min(lo + size, probes.count)
            results.set(c, run(lo..<hi))
        }
        var runs = 0
        for part in results.values {
            runs += part.runs
            for f in part.found {
                changed += 1
                let probe = probes[f.probe]
                let (key, fields) = describe(f.old, f.new)
                if groups[key] == nil {
                    order.append(key)
                    groups[key] = Group(what: key, fields: fields, count: 0, examples: [])
                }
                groups[key]!.count += 1
                if groups[key]!.examples.count < 3 {
                    groups[key]!.examples.append(Change(request: probe.label, source: probe.source, draws: f.draws, old: f.old, new: f.new))
                }
            }
        }
        // Biggest groups first; ties keep the corpus order (deterministic output).
        let sorted = order.enumerated().sorted { x, y in
            let (cx, cy) = (groups[x.element]!.count, groups[y.element]!.count)
            return cx != cy ? cx > cy : x.offset < y.offset
        }.map { groups[$0.element]! }
        return Report(requests: runs, changed: changed, groups: sorted)
    }

    /// What `snapshot` does with `request`.
    public static func outcome(_ request: DryRunRequest, _ snapshot: Snapshot) -> Outcome {
        var request = request
        if let l = request.listener, !snapshot.listeners.contains(where: { $0.id == l }) {
            return .failed("no listener '\(l)'")
        }
        if request.random == nil { request.random = midDraw }
        let r: DryRunResult
        do { r = try DryRun.run(request, snapshot: snapshot, explain: false) } catch {
            return .failed("\(error)")
        }
        var o = Outcome(route: r.route, answer: "proxy", chain: r.trace.map(\.stage).filter { $0 != "upstream" },
                        pool: r.upstream?.pool, upstream: nil, headers: [])
        if let local = r.local {
            o.answer = String(local.status)
            if (300..<400).contains(local.status), let loc = local.headers.first(where: { $0[0].lowercased() == "location" }) {
                o.answer += " " + loc[1]
            }
        }
        if let u = r.upstream {
            let host = u.headers.first { $0[0].lowercased() == "host" }?[1] ?? ""
            o.upstream = "\(u.method) \(u.target) (Host: \(host))"
            o.headers = u.headers.filter { $0[0].lowercased() != "host" }.map { "\($0[0]): \(maskIDs($0[1]))" }
        }
        return o
    }

    /// The request head a client would send for `request` (built once for both snapshots); nil
    /// for a raw request or one that cannot be written (the full run reports why).
    static func head(_ request: DryRunRequest) -> ByteBuffer? {
        guard request.raw == nil else { return nil }
        var wire = ByteBufferAllocator().buffer(capacity: 64 + request.method.utf8.count + 2 * request.url.utf8.count)
        do { try DryRun.requestBytes(request, into: &wire) } catch { return nil }
        return wire
    }

    /// The listener `request` arrives on in `snapshot` (nil: none of that id).
    static func listener(_ request: DryRunRequest, _ snapshot: Snapshot) -> ListenerSpec? {
        if let id = request.listener { return snapshot.listeners.first { $0.id == id } }
        return snapshot.listeners.first
    }

    /// The head serve's parser reads from `wire` on `listener`; nil when it cannot be framed
    /// (the full run reports why).
    static func parse(_ wire: ByteBuffer, _ listener: ListenerSpec) -> RequestHead? {
        var wire = wire
        var parser = HTTP1RequestParser(limits: HTTP1Limits(listener: listener))
        guard case .head(let head)? = parser.next(&wire) else { return nil }
        return head
    }

    /// The route serve's router picks for `head` (nil: none).
    static func route(_ head: RequestHead, _ listener: ListenerSpec, _ snapshot: Snapshot) -> String? {
        snapshot.router.match(head, listener: listener.index).map { snapshot.routes[$0.routeIndex].id }
    }

    /// The draw used when no split is involved: any value gives the same outcome then.
    static let midDraw: UInt64 = 1 << 63

    /// A request whose route (in either config) splits traffic runs once per band of draws that
    /// both configs agree on: the union of both tables' boundaries cuts [0, 1) into intervals in
    /// which neither config changes its choice, and each interval's midpoint stands for it.
    /// Empty when neither route splits.
    static func splitBands(_ tables: [SplitTable?]) -> [(UInt64, String)] {
        var cuts: Set<Double> = [0, 1]
        for case let table? in tables {
            for u in table.upper { cuts.insert(Double(u) / Double(table.total)) }
        }
        guard cuts.count > 2 else { return [] }
        let points = cuts.sorted()
        var out: [(UInt64, String)] = []
        for i in 0..<(points.count - 1) where points[i + 1] > points[i] {
            let mid = (points[i] + points[i + 1]) / 2
            out.append((UInt64(min(mid * 18446744073709551616.0, 18446744073709549568.0)),
                        "\(fraction(points[i]))-\(fraction(points[i + 1]))"))
        }
        return out
    }

    static func splits(_ s: Snapshot) -> [String: SplitTable] {
        var out: [String: SplitTable] = [:]
        for r in s.routes { if let t = r.split { out[r.id] = t } }
        return out
    }

    static func fraction(_ f: Double) -> String {
        if f == 0 { return "0" }
        if f == 1 { return "1" }
        var s = String(f)
        if s.count > 6 { s = String(s.prefix(6)) }
        return s
    }

    /// The group a change belongs to and the fields that differ. A route change says it all: the
    /// rest follows from the route. Otherwise the key names the route and the values of the
    /// fields whose values are few (answer, pool, chain); upstream targets and headers vary per
    /// request, so only their field names go into the key.
    static func describe(_ a: Outcome, _ b: Outcome) -> (String, [String]) {
        var fields: [String] = []
        if a.route != b.route { fields.append("route") }
        if a.answer != b.answer { fields.append("answer") }
        if a.chain != b.chain { fields.append("chain") }
        if a.pool != b.pool { fields.append("pool") }
        if a.upstream != b.upstream { fields.append("upstream") }
        if a.headers != b.headers { fields.append("headers") }
        func name(_ r: String?) -> String { r.map { "route `\($0)`" } ?? "no route" }
        if a.route != b.route {
            return ("move from \(name(a.route)) to \(name(b.route))", fields)
        }
        var parts: [String] = []
        if a.answer != b.answer { parts.append("answer \(a.answer) -> \(b.answer)") }
        if a.pool != b.pool { parts.append("pool \(a.pool ?? "none") -> \(b.pool ?? "none")") }
        if a.chain != b.chain {
            parts.append("chain [\(a.chain.joined(separator: ", "))] -> [\(b.chain.joined(separator: ", "))]")
        }
        if a.upstream != b.upstream { parts.append("upstream target changes") }
        if a.headers != b.headers {
            let names = Set(a.headers + b.headers).subtracting(Set(a.headers).intersection(b.headers))
                .map { String($0.prefix { $0 != ":" }) }
            parts.append("upstream header(s) \(Array(Set(names)).sorted().joined(separator: ", ")) change")
        }
        return ("on \(name(a.route)): " + parts.joined(separator: "; "), fields)
    }

    /// Generated request ids (32 hex digits) differ per run; they are not a change.
    static func maskIDs(_ s: String) -> String {
        var out = ""
        var run = ""
        func flush() {
            out += run.count >= 32 ? "<id>" : run
            run = ""
        }
        for c in s {
            if c.isHexDigit { run.append(c) } else { flush(); out.append(c) }
        }
        flush()
        return out
    }
}

/// Results of parallel chunks, each set once by its own worker.
final class ChunkResults<T>: @unchecked Sendable {
    private var slots: [T?]
    private let lock = NIOLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ value: T) { lock.withLock { slots[i] = value } }

    var values: [T] { lock.withLock { slots.compactMap { $0 } } }
}
