import ProxRegex

/// The result of routing: the route index, in config order.
public struct RouterMatch: Sendable, Equatable {
    public var routeIndex: Int
    public init(routeIndex: Int) { self.routeIndex = routeIndex }
}

/// The compiled router.
///
/// Which route wins is defined by `RouteMatchSpec.mismatch`: the first route, in config
/// order, whose spec matches (`ReferenceRouter` is that definition run literally). The
/// compiled router gives the same answer without trying every route:
///
///  - Hosts: routes are filed into buckets by host pattern. Exact hosts are found with one
///    hash lookup; wildcard suffixes that start with `.` with one lookup per dot of the host
///    (the hashes of all suffixes come from one right-to-left pass); host regexes through one
///    `RegexSet`; routes without hosts are in the any-host bucket. A route listing several
///    hosts is in several buckets.
///  - Paths, per bucket (`PathTable`): a radix tree over path bytes. Walking it along the
///    request path visits every prefix route that applies and ends at the exact routes for the
///    path. Anchored regexes with a literal prefix (`^/api/v1/users/[0-9]+`) hang under that
///    prefix, so they are tried only for paths that start with it; other regexes hang at the
///    root and are matched as combined PCRE2 alternations (`RegexSet`).
///  - Every candidate list is in route order, and the search carries the best (lowest) route
///    index found so far: a list, node, subtree, regex set or bucket whose lowest route is not
///    below it is skipped. Method and listener are checked with bit masks before regexes and
///    predicates run.
///
/// The result is the minimum, over all places a route could be found, of the first route in
/// that place that fully matches: exactly the first route in config order that matches.
/// `RouterPropertyTests` compares it with `ReferenceRouter` on random configs and requests.
public final class Router: Sendable {
    public let specs: [RouteMatchSpec]
    let table: RouterTable

    public init(_ specs: [RouteMatchSpec]) throws {
        self.specs = specs
        self.table = RouterTable(specs)
    }

    /// The first route, in config order, that matches. Runs on the request's event loop.
    public func match(_ head: RequestHead, listener: Int) -> RouterMatch? {
        let found: Int32 = head.withPathBytes { raw in
            if isASCII(raw) { return table.route(head, path: raw, listener: listener) }
            // Not ASCII: route on the bytes of `head.path`, the String every other reader of the
            // path sees (invalid UTF-8 repaired), so the regexes see valid UTF-8.
            var p = head.path
            return p.withUTF8 { table.route(head, path: UnsafeRawBufferPointer($0), listener: listener) }
        }
        return found == .max ? nil : RouterMatch(routeIndex: Int(found))
    }

    /// What the compiler built, for logs and benchmarks.
    public var summary: String { table.summary }
}

/// The naive router: tries each route in config order with `RouteMatchSpec.mismatch`. It is
/// the definition the compiled `Router` must agree with; tests and documentation use it.
public final class ReferenceRouter: Sendable {
    public let specs: [RouteMatchSpec]

    public init(_ specs: [RouteMatchSpec]) {
        self.specs = specs
    }

    public func match(_ head: RequestHead, listener: Int) -> RouterMatch? {
        for (i, s) in specs.enumerated() where s.mismatch(head, listener: listener) == nil {
            return RouterMatch(routeIndex: i)
        }
        return nil
    }
}

/// Per-route facts checked with bit operations.
struct RouteInfo {
    /// Bit per `HTTPMethod` case (`methodBit`); all ones when the route takes any method.
    var methodMask: UInt16
    /// Bit per listener index below 64; all ones when the route takes any listener.
    var listenerMask: UInt64
    var flags: UInt8

    /// The route's method set holds `.other` methods: compare the set for such a request.
    static let otherMethods: UInt8 = 1
    /// The route restricts listeners: compare the set when the request's listener is >= 64.
    static let listenerSet: UInt8 = 2
    static let predicates: UInt8 = 4

    static let otherBit: UInt16 = 1 << 15

    static func methodBit(_ m: HTTPMethod) -> UInt16 {
        switch m {
        case .get: return 1 << 0
        case .head: return 1 << 1
        case .post: return 1 << 2
        case .put: return 1 << 3
        case .delete: return 1 << 4
        case .connect: return 1 << 5
        case .options: return 1 << 6
        case .trace: return 1 << 7
        case .patch: return 1 << 8
        case .other: return otherBit
        }
    }

    init(_ spec: RouteMatchSpec) {
        flags = 0
        if let ms = spec.methods {
            methodMask = 0
            for m in ms { methodMask |= RouteInfo.methodBit(m) }
            if methodMask & RouteInfo.otherBit != 0 { flags |= RouteInfo.otherMethods }
        } else {
            methodMask = .max
        }
        if let ls = spec.listeners {
            listenerMask = 0
            for l in ls where l >= 0 && l < 64 { listenerMask |= 1 << UInt64(l) }
            flags |= RouteInfo.listenerSet
        } else {
            listenerMask = .max
        }
        if !spec.predicates.isEmpty { flags |= RouteInfo.predicates }
    }
}

/// One request's routing state.
struct Probe {
    /// Lowest matching route index found so far; `.max` when none.
    var best: Int32 = .max
    let methodBit: UInt16
    /// 0 when the listener index is not below 64.
    let listenerBit: UInt64
    let listener: Int
}

/// Everything the router compiled. Immutable after init.
final class RouterTable: @unchecked Sendable {
    let specs: [RouteMatchSpec]
    let infos: FlatBuffer<RouteInfo>
    let buckets: [PathTable]
    let exactHosts: ByteTable
    /// Wildcard suffixes that start with '.'.
    let suffixHosts: ByteTable
    /// Other wildcard suffixes (no leading dot, empty): checked one by one, in bucket order.
    let otherSuffixes: [(suffix: [UInt8], bucket: Int32)]
    /// Distinct host regexes, ordered by the lowest route of their bucket.
    let hostRegexes: RegexSet?
    let hostRegexBuckets: [Int32]
    let hostRegexMins: [Int32]
    let anyHostBucket: Int32

    init(_ specs: [RouteMatchSpec]) {
        self.specs = specs
        infos = FlatBuffer(specs.map(RouteInfo.init))

        var bucketRoutes: [[Int32]] = []
        func newBucket() -> Int32 {
            bucketRoutes.append([])
            return Int32(bucketRoutes.count - 1)
        }
        func add(_ b: Int32, _ r: Int32) {
            if bucketRoutes[Int(b)].last != r { bucketRoutes[Int(b)].append(r) }
        }
        /// Byte strings hashed in one call (`[UInt8]` as a key hashes byte by byte).
        struct HostKey: Hashable {
            let bytes: [UInt8]
            init(_ bytes: [UInt8]) { self.bytes = bytes }
            func hash(into h: inout Hasher) { bytes.withUnsafeBytes { h.combine(bytes: $0) } }
        }
        var exact: [HostKey: Int32] = [:]
        var suffix: [[UInt8]: Int32] = [:]
        var other: [[UInt8]: Int32] = [:]
        var otherOrder: [[UInt8]] = []
        struct RegexKey: Hashable { let pattern: String; let caseless: Bool; let anchored: Bool }
        var regexBuckets: [RegexKey: Int32] = [:]
        var regexOrder: [(Regex, Int32)] = []
        var any: Int32 = -1

        for (i, spec) in specs.enumerated() {
            let r = Int32(i)
            if spec.hosts.isEmpty {
                if any < 0 { any = newBucket() }
                add(any, r)
            }
            for h in spec.hosts {
                switch h {
                case .exact(let s):
                    let k = HostKey(Array(s.utf8))
                    if let b = exact[k] {
                        add(b, r)
                    } else {
                        let b = newBucket()
                        exact[k] = b
                        add(b, r)
                    }
                case .wildcard(let s):
                    let k = Array(s.utf8)
                    if k.first == UInt8(ascii: ".") {
                        let b = suffix[k] ?? newBucket()
                        suffix[k] = b
                        add(b, r)
                    } else {
                        if other[k] == nil { otherOrder.append(k) }
                        let b = other[k] ?? newBucket()
                        other[k] = b
                        add(b, r)
                    }
                case .regex(let re):
                    let key = RegexKey(pattern: re.pattern, caseless: re.caseless, anchored: re.anchoredOption)
                    if let b = regexBuckets[key] {
                        add(b, r)
                    } else {
                        let b = newBucket()
                        regexBuckets[key] = b
                        regexOrder.append((re, b))
                        add(b, r)
                    }
                }
            }
        }
        buckets = bucketRoutes.map { PathTable(routes: $0, specs: specs) }
        exactHosts = ByteTable(exact.map { ($0.key.bytes, $0.value) })
        suffixHosts = ByteTable(suffix.map { ($0.key, $0.value) })
        otherSuffixes = otherOrder.map { ($0, other[$0]!) }
        hostRegexes = regexOrder.isEmpty ? nil : RegexSet(regexOrder.map(\.0))
        hostRegexBuckets = regexOrder.map(\.1)
        hostRegexMins = regexOrder.map { bucketRoutes[Int($0.1)][0] }
        anyHostBucket = any
    }

    deinit { infos.free() }

    var summary: String {
        let nodes = buckets.reduce(0) { $0 + $1.nodeCount }
        let sources = buckets.flatMap(\.regexSources)
        let sets = sources.compactMap(\.set)
        return "\(specs.count) routes, \(buckets.count) host buckets (\(exactHosts.count) exact, \(suffixHosts.count + otherSuffixes.count) wildcard, "
            + "\(hostRegexBuckets.count) regex, \(anyHostBucket >= 0 ? 1 : 0) any), \(nodes) path nodes, "
            + "\(sources.reduce(0) { $0 + $1.routes.count }) path regexes in \(sources.count) places "
            + "(\(sets.count) sets: \(sets.reduce(0) { $0 + $1.combinedCount }) combined patterns, \(sets.reduce(0) { $0 + $1.individualCount }) alone)"
    }

    // MARK: matching

    /// The lowest matching route index, or `.max`. `path` must be valid UTF-8.
    func route(_ head: RequestHead, path: UnsafeRawBufferPointer, listener: Int) -> Int32 {
        var probe = Probe(methodBit: RouteInfo.methodBit(head.method),
                          listenerBit: listener >= 0 && listener < 64 ? 1 << UInt64(listener) : 0,
                          listener: listener)
        var host = head.host
        host.withUTF8 { hb in
            let n = hb.count
            let base = hb.baseAddress ?? emptyBytes
            if exactHosts.count > 0 || suffixHosts.count > 0 {
                // One right-to-left pass: suffix hashes at each dot, the whole host's at the end.
                var h = ByteTable.seed
                var hits: (Int32, Int32, Int32, Int32) = (-1, -1, -1, -1)
                var nhits = 0
                var i = n
                while i > 0 {
                    i -= 1
                    let b = base[i]
                    h = ByteTable.step(h, b)
                    if b == UInt8(ascii: ".") && i > 0 && suffixHosts.count > 0 {
                        let bucket = suffixHosts.lookup(h, base + i, n - i)
                        if bucket >= 0 {
                            switch nhits {
                            case 0: hits.0 = bucket
                            case 1: hits.1 = bucket
                            case 2: hits.2 = bucket
                            case 3: hits.3 = bucket
                            default: search(bucket, head, path, &probe)
                            }
                            nhits += 1
                        }
                    }
                }
                if exactHosts.count > 0 {
                    let bucket = exactHosts.lookup(h, base, n)
                    if bucket >= 0 { search(bucket, head, path, &probe) }
                }
                if nhits > 0 { search(hits.0, head, path, &probe) }
                if nhits > 1 { search(hits.1, head, path, &probe) }
                if nhits > 2 { search(hits.2, head, path, &probe) }
                if nhits > 3 { search(hits.3, head, path, &probe) }
            }
            for (s, bucket) in otherSuffixes {
                if buckets[Int(bucket)].minRoute >= probe.best { break }
                if n > s.count && s.withUnsafeBufferPointer({ bytesEqual(base + (n - $0.count), $0.baseAddress ?? emptyBytes, $0.count) }) {
                    search(bucket, head, path, &probe)
                }
            }
            if let set = hostRegexes {
                let subject = UnsafeRawBufferPointer(hb)
                var from = 0
                while true {
                    let limit = lowerBound(hostRegexMins, probe.best)
                    guard from < limit, let k = set.firstMatch(subject, in: from..<limit, validUTF8: true, where: { _ in true }) else { break }
                    search(hostRegexBuckets[k], head, path, &probe)
                    from = k + 1
                }
            }
        }
        if anyHostBucket >= 0 { search(anyHostBucket, head, path, &probe) }
        return probe.best
    }

    /// Number of leading elements of `a` (ascending) below `bound`.
    @inline(__always)
    func lowerBound(_ a: [Int32], _ bound: Int32) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if a[mid] < bound { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Method and listener: bit tests, with a set lookup only for unusual requests.
    @inline(__always)
    func cheapCheck(_ r: Int32, _ head: RequestHead, _ probe: Probe) -> Bool {
        let info = infos[Int(r)]
        if info.methodMask & probe.methodBit == 0 { return false }
        if probe.methodBit == RouteInfo.otherBit && info.flags & RouteInfo.otherMethods != 0 {
            if !(specs[Int(r)].methods?.contains(head.method) ?? true) { return false }
        }
        if probe.listenerBit != 0 {
            if info.listenerMask & probe.listenerBit == 0 { return false }
        } else if info.flags & RouteInfo.listenerSet != 0 {
            // The request's listener index is outside 0..<64: no mask has it, ask the set.
            if !(specs[Int(r)].listeners?.contains(probe.listener) ?? true) { return false }
        }
        return true
    }

    @inline(__always)
    func predicatesHold(_ r: Int32, _ head: RequestHead) -> Bool {
        if infos[Int(r)].flags & RouteInfo.predicates == 0 { return true }
        for p in specs[Int(r)].predicates where !p.holds(head) { return false }
        return true
    }

    /// Sets `probe.best` to the first route of bucket `b` (below the current best) that matches.
    func search(_ b: Int32, _ head: RequestHead, _ path: UnsafeRawBufferPointer, _ probe: inout Probe) {
        let t = buckets[Int(b)]
        if t.minRoute >= probe.best { return }
        let n = path.count
        let p = path.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyBytes
        var node = t.nodes[0]
        var pos = 0
        visit(t, node, head, path, &probe)
        while true {
            if node.subtreeMin >= probe.best { return }
            if pos == n {
                scan(t, Int(node.exactStart), Int(node.exactCount), head, &probe)
                return
            }
            let c = t.child(node, p[pos])
            if c < 0 { return }
            let cn = t.nodes[Int(c)]
            let len = Int(cn.labelLength)
            guard n - pos >= len, bytesEqual(t.labels.base + Int(cn.labelStart), p + pos, len) else { return }
            pos += len
            node = cn
            visit(t, node, head, path, &probe)
        }
    }

    /// The prefix routes and regex routes filed at a node the path passed through.
    @inline(__always)
    func visit(_ t: PathTable, _ node: PathTable.Node, _ head: RequestHead, _ path: UnsafeRawBufferPointer, _ probe: inout Probe) {
        if node.subtreeMin >= probe.best { return }
        if node.prefixCount > 0 { scan(t, Int(node.prefixStart), Int(node.prefixCount), head, &probe) }
        if node.regex >= 0 { matchRegexes(t.regexSources[Int(node.regex)], head, path, &probe) }
    }

    @inline(__always)
    func scan(_ t: PathTable, _ start: Int, _ count: Int, _ head: RequestHead, _ probe: inout Probe) {
        var j = start
        let end = start + count
        while j < end {
            let r = t.routeLists[j]
            if r >= probe.best { return }
            if cheapCheck(r, head, probe) && predicatesHold(r, head) {
                probe.best = r
                return
            }
            j += 1
        }
    }

    func matchRegexes(_ src: RegexSource, _ head: RequestHead, _ path: UnsafeRawBufferPointer, _ probe: inout Probe) {
        if src.routes[0] >= probe.best { return }
        if let set = src.set {
            let limit = src.limit(below: probe.best)
            let p = probe
            if let k = set.firstMatch(path, in: 0..<limit, validUTF8: true, where: { k in
                let r = src.routes[k]
                return cheapCheck(r, head, p) && predicatesHold(r, head)
            }) {
                probe.best = src.routes[k]
            }
            return
        }
        for k in 0..<src.routes.count {
            let r = src.routes[k]
            if r >= probe.best { return }
            if cheapCheck(r, head, probe) && src.regexes[k].matches(validUTF8: path) && predicatesHold(r, head) {
                probe.best = r
                return
            }
        }
    }
}

/// A readable zero-length buffer's base for empty subjects.
nonisolated(unsafe) let emptyBytes: UnsafePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    p.initialize(to: 0)
    return UnsafePointer(p)
}()
