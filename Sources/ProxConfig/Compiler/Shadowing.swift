import ProxCore

/// "Route A covers route B": every request B matches, A matches too. Conservative: true only
/// when certain, so a shadowing report is always a real bug.
enum Coverage {
    static func covers(_ a: RouteMatchSpec, _ b: RouteMatchSpec) -> Bool {
        subset(b.listeners, of: a.listeners)
            && hostsCover(a.hosts, b.hosts)
            && pathCovers(a.path, b.path)
            && subset(b.methods, of: a.methods)
            && a.predicates.allSatisfy { pa in b.predicates.contains { pb in implies(pb, pa) } }
    }

    /// nil is "everything".
    static func subset<T>(_ b: Set<T>?, of a: Set<T>?) -> Bool {
        guard let a else { return true }
        guard let b else { return false }
        return b.isSubset(of: a)
    }

    static func hostsCover(_ a: [HostPattern], _ b: [HostPattern]) -> Bool {
        if a.isEmpty { return true }
        if b.isEmpty { return false }
        return b.allSatisfy { hb in a.contains { ha in hostCovers(ha, hb) } }
    }

    static func hostCovers(_ a: HostPattern, _ b: HostPattern) -> Bool {
        switch (a, b) {
        case (.exact(let x), .exact(let y)): return x.utf8.elementsEqual(y.utf8)
        case (.wildcard(let s), .exact(let y)): return y.utf8.count > s.utf8.count && bytesHaveSuffix(y, s)
        case (.wildcard(let s), .wildcard(let t)): return bytesHaveSuffix(t, s)
        case (.regex(let r), .regex(let q)): return r.pattern == q.pattern
        case (.regex(let r), .exact(let y)): return r.matches(y)
        default: return false
        }
    }

    static func pathCovers(_ a: PathPattern?, _ b: PathPattern?) -> Bool {
        guard let a else { return true }
        guard let b else { return false }
        switch (a, b) {
        case (.prefix(let p), .prefix(let q)): return q.utf8.starts(with: p.utf8)
        case (.prefix(let p), .exact(let e)): return e.utf8.starts(with: p.utf8)
        case (.exact(let x), .exact(let y)): return x.utf8.elementsEqual(y.utf8)
        case (.regex(let r), .regex(let q)): return r.pattern == q.pattern
        case (.regex(let r), .exact(let e)): return r.matches(e)
        default: return false
        }
    }

    /// Whether predicate `b` holding guarantees `a` holds.
    static func implies(_ b: ValuePredicate, _ a: ValuePredicate) -> Bool {
        switch (a.source, b.source) {
        case (.header(let x), .header(let y)) where x == y: break
        case (.query(let x), .query(let y)) where x == y: break
        case (.cookie(let x), .cookie(let y)) where x == y: break
        default: return false
        }
        switch (a.test, b.test) {
        case (.present, .present), (.absent, .absent), (.present, .exact), (.present, .regex): return true
        case (.exact(let x), .exact(let y)): return x == y
        case (.regex(let r), .regex(let q)): return r.pattern == q.pattern
        case (.regex(let r), .exact(let y)): return r.matches(y)
        default: return false
        }
    }

    /// Byte-wise suffix test, as the router compares hosts.
    static func bytesHaveSuffix(_ s: String, _ suffix: String) -> Bool {
        s.utf8.reversed().starts(with: suffix.utf8.reversed())
    }

    /// True when the spec matches every request (on its listeners).
    static func isCatchAll(_ s: RouteMatchSpec) -> Bool {
        s.hosts.isEmpty && s.path == nil && s.methods == nil && s.predicates.isEmpty
    }
}

/// Which earlier route, if any, covers each route: the shadowed-route check.
///
/// Only candidates are compared, found through an index of the routes before: by host (no host;
/// the same exact host; wildcard and regex hosts, which are few, all), then by path kind: routes
/// with no path, the exact path itself, the prefixes of the path (one hash per distinct prefix
/// length, over the path's bytes, no string made), the same regex pattern, and for an exact path
/// the anchored regexes whose literal prefix starts it (plus the regexes without one). Routes are
/// read in place from one buffer: no `RouteMatchSpec` is copied. Measured on 10,000 mixed routes:
/// docs/BENCHMARKS.md, "Validate at scale".
enum Shadowing {
    /// For each spec, the index (into `specs`) of the first earlier spec that covers it.
    static func coveringRoutes(_ specs: [RouteMatchSpec]) -> [Int?] {
        var index = Index()
        var out = [Int?](repeating: nil, count: specs.count)
        var candidates: [Int] = []
        var seen = [Int](repeating: -1, count: specs.count)
        specs.withUnsafeBufferPointer { p in
            for k in p.indices {
                candidates.removeAll(keepingCapacity: true)
                index.candidates(for: p[k], into: &candidates)
                candidates.sort()
                for i in candidates where seen[i] != k {
                    seen[i] = k
                    if Coverage.covers(p[i], p[k]) { out[k] = i; break }
                }
                index.insert(p[k], at: k)
            }
        }
        return out
    }

    /// The same answer by comparing every earlier route: the reference the index is tested
    /// against.
    static func coveringRoutesNaive(_ specs: [RouteMatchSpec]) -> [Int?] {
        specs.indices.map { k in (0..<k).first { Coverage.covers(specs[$0], specs[k]) } }
    }

    /// Earlier routes by host key and path, as 64-bit hashes (collisions only add candidates:
    /// `Coverage.covers` decides).
    struct Index {
        /// Host keys: 0 for routes with no host, 1 for wildcard and regex hosts, then one per
        /// exact host.
        var hostIDs: [String: UInt64] = [:]
        var anyPath = Buckets()
        var exact = Buckets()
        var prefix = Buckets()
        var regexPattern = Buckets()
        var regexLiteral = Buckets()
        /// Regexes with no anchored literal prefix: candidates for every exact path.
        var regexAny = Buckets()
        var prefixLengths: [Int] = []
        var regexLiteralLengths: [Int] = []

        static let noHost: UInt64 = 0, otherHosts: UInt64 = 1

        mutating func hostID(_ h: String) -> UInt64 {
            if let id = hostIDs[h] { return id }
            let id = UInt64(hostIDs.count + 2)
            hostIDs[h] = id
            return id
        }

        /// The host keys a route is filed under.
        mutating func keys(of s: RouteMatchSpec) -> [UInt64] {
            if s.hosts.isEmpty { return [Self.noHost] }
            var out: [UInt64] = []
            for h in s.hosts {
                let k: UInt64
                if case .exact(let x) = h { k = hostID(x) } else { k = Self.otherHosts }
                if !out.contains(k) { out.append(k) }
            }
            return out
        }

        /// The host keys under which a route that covers `s` can be filed: one that covers its
        /// first host (every host of `s` must be covered).
        func lookupKeys(of s: RouteMatchSpec) -> [UInt64] {
            guard let first = s.hosts.first else { return [Self.noHost] }
            if case .exact(let x) = first, let id = hostIDs[x] { return [Self.noHost, Self.otherHosts, id] }
            return [Self.noHost, Self.otherHosts]
        }

        static func mix(_ key: UInt64, _ kind: UInt64, _ h: UInt64) -> UInt64 {
            var x = h ^ (key &* 0x9E37_79B9_7F4A_7C15) ^ (kind &* 0xC2B2_AE3D_27D4_EB4F)
            x ^= x >> 31
            return x &* 0xBF58_476D_1CE4_E5B9
        }

        static let fnvBasis: UInt64 = 0xcbf2_9ce4_8422_2325, fnvPrime: UInt64 = 0x100_0000_01b3

        static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
            var h = fnvBasis
            for b in bytes { h = (h ^ UInt64(b)) &* fnvPrime }
            return h
        }

        static func hash(_ s: String) -> UInt64 { withBytes(s) { hash($0) } }

        static func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBufferPointer { hash($0) } }

        /// The string's UTF-8 in place: iterating `String.UTF8View` cost four times as much.
        static func withBytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
            if let r = s.utf8.withContiguousStorageIfAvailable(body) { return r }
            return Array(s.utf8).withUnsafeBufferPointer(body)
        }

        /// Sets `out` to the hashes of the path's first bytes, one for each length in `lengths`
        /// (ascending) up to the path's length.
        static func prefixHashes(_ path: UnsafeBufferPointer<UInt8>, _ lengths: [Int], into out: inout [UInt64]) {
            out.removeAll(keepingCapacity: true)
            guard !lengths.isEmpty else { return }
            var h = fnvBasis
            var n = 0, next = 0
            if lengths[0] == 0 {
                out.append(h)
                next = 1
            }
            for b in path {
                guard next < lengths.count else { return }
                h = (h ^ UInt64(b)) &* fnvPrime
                n += 1
                if n == lengths[next] {
                    next += 1
                    out.append(h)
                }
            }
        }

        /// Hashes of the route looked up, kept between calls (no arrays made per route).
        var prefixScratch: [UInt64] = [], literalScratch: [UInt64] = []

        /// The path's hashes do not depend on the host key: they are made once per route, then
        /// mixed with each key.
        mutating func candidates(for b: RouteMatchSpec, into out: inout [Int]) {
            var pathHash: UInt64 = 0
            switch b.path {
            case nil:
                break
            case .exact(let q)?:
                Self.withBytes(q) { bytes in
                    pathHash = Self.hash(bytes)
                    Self.prefixHashes(bytes, prefixLengths, into: &prefixScratch)
                    Self.prefixHashes(bytes, regexLiteralLengths, into: &literalScratch)
                }
            case .prefix(let q)?:
                Self.withBytes(q) { Self.prefixHashes($0, prefixLengths, into: &prefixScratch) }
            case .regex(let r)?:
                pathHash = Self.hash(r.pattern)
            }
            for key in lookupKeys(of: b) {
                if let hits = anyPath[key] { out += hits }
                switch b.path {
                case nil:
                    break
                case .exact?:
                    if let hits = exact[Self.mix(key, 1, pathHash)] { out += hits }
                    for h in prefixScratch { if let hits = prefix[Self.mix(key, 2, h)] { out += hits } }
                    for h in literalScratch { if let hits = regexLiteral[Self.mix(key, 4, h)] { out += hits } }
                    if let hits = regexAny[key] { out += hits }
                case .prefix?:
                    for h in prefixScratch { if let hits = prefix[Self.mix(key, 2, h)] { out += hits } }
                case .regex?:
                    if let hits = regexPattern[Self.mix(key, 3, pathHash)] { out += hits }
                }
            }
        }

        static func addLength(_ n: Int, to lengths: inout [Int]) {
            let i = lengths.firstIndex { $0 >= n } ?? lengths.count
            if i == lengths.count || lengths[i] != n { lengths.insert(n, at: i) }
        }

        mutating func insert(_ a: RouteMatchSpec, at i: Int) {
            for key in keys(of: a) {
                switch a.path {
                case nil:
                    anyPath.append(i, at: key)
                case .exact(let x)?:
                    exact.append(i, at: Self.mix(key, 1, Self.hash(x)))
                case .prefix(let x)?:
                    prefix.append(i, at: Self.mix(key, 2, Self.hash(x)))
                    Self.addLength(x.utf8.count, to: &prefixLengths)
                case .regex(let r)?:
                    regexPattern.append(i, at: Self.mix(key, 3, Self.hash(r.pattern)))
                    if let lp = r.anchoredLiteralPrefix, !lp.isEmpty {
                        regexLiteral.append(i, at: Self.mix(key, 4, Self.hash(lp)))
                        Self.addLength(lp.count, to: &regexLiteralLengths)
                    } else {
                        regexAny.append(i, at: key)
                    }
                }
            }
        }
    }
}

extension Shadowing {
    /// Route lists by 64-bit key in an open-addressed table. The keys are hashes already (or
    /// small host ids): a Dictionary would hash each again with SipHash, which was half the
    /// cost of the check.
    struct Buckets {
        private var keys: [UInt64] = []
        private var lists: [[Int]] = []
        private var filled: [Bool] = []
        private var count = 0

        subscript(key: UInt64) -> [Int]? {
            guard count > 0 else { return nil }
            let mask = keys.count - 1
            var i = Self.slot(key, mask)
            while filled[i] {
                if keys[i] == key { return lists[i] }
                i = (i + 1) & mask
            }
            return nil
        }

        mutating func append(_ value: Int, at key: UInt64) {
            if (count + 1) * 2 > keys.count { grow() }
            let mask = keys.count - 1
            var i = Self.slot(key, mask)
            while filled[i] {
                if keys[i] == key {
                    lists[i].append(value)
                    return
                }
                i = (i + 1) & mask
            }
            filled[i] = true
            keys[i] = key
            lists[i] = [value]
            count += 1
        }

        /// Fibonacci hashing: spreads small ids as well as hashes over the table.
        static func slot(_ key: UInt64, _ mask: Int) -> Int {
            Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
        }

        private mutating func grow() {
            let (oldKeys, oldLists, oldFilled) = (keys, lists, filled)
            let n = max(16, keys.count * 2)
            keys = Array(repeating: 0, count: n)
            lists = Array(repeating: [], count: n)
            filled = Array(repeating: false, count: n)
            let mask = n - 1
            for j in oldKeys.indices where oldFilled[j] {
                var i = Self.slot(oldKeys[j], mask)
                while filled[i] { i = (i + 1) & mask }
                filled[i] = true
                keys[i] = oldKeys[j]
                lists[i] = oldLists[j]
            }
        }
    }
}

extension Compilation {
    /// Reports each route that an earlier route covers, naming both (`Shadowing`).
    mutating func checkShadowing(_ specs: [(Int, RouteMatchSpec)]) {
        let covering = Shadowing.coveringRoutes(specs.map(\.1))
        for (k, i) in covering.enumerated() {
            guard let i else { continue }
            report(shadowed: specs[k].0, by: specs[i].0, specs[i].1)
        }
    }

    private mutating func report(shadowed j: Int, by i: Int, _ a: RouteMatchSpec) {
        let ra = doc.routes[i], rb = doc.routes[j]
        guard let nb = rb.node, let idA = ra.id?.value, let idB = rb.id?.value else { return }
        let whereA = "routes[\(i)], line \(ra.node?.mark.line ?? 0)"
        let hint = Coverage.isCatchAll(a)
            ? "'\(idA)' has no conditions\(a.listeners == nil ? "" : " on its listeners"), so it takes every request; put it last"
            : "move '\(idB)' before '\(idA)', or make '\(idA)' narrower"
        error(nb, "route '\(idB)' can never match: route '\(idA)' (\(whereA)) comes first and matches every request it would",
              hint: hint)
    }
}
