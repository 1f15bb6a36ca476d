import ProxCore

/// `prox diff`'s structural half: the listeners, pools, chains and routes that were added,
/// removed or changed between two config documents, each named by id with where it is written
/// on both sides, and routes whose order changed (order decides matching).
///
/// It compares the documents as written (`ConfigNode` trees), so a change is reported in the
/// config's own terms (`match.path`, `proxy.split`), not the compiler's.
public enum StructuralDiff {
    public struct Change: Sendable, Codable, Equatable {
        /// `listener`, `pool`, `chain`, `route`, `server`.
        public var kind: String
        public var id: String
        /// `added`, `removed`, `changed`, `moved`.
        public var change: String
        /// For `changed`: the config paths under the entity that differ (`match.path`, `proxy`).
        public var keys: [String]
        /// `file:line:col` in the old and the new document; nil on the side where it is absent.
        public var old: String?
        public var new: String?
        /// For `moved`: positions and neighbours, in words.
        public var detail: String?
    }

    public static func compare(old: ConfigNode, new: ConfigNode) -> [Change] {
        var out: [Change] = []
        if let a = old["server"], let b = new["server"] {
            let keys = changedPaths(a, b, prefix: "", depth: 1)
            if !keys.isEmpty {
                out.append(Change(kind: "server", id: "server", change: "changed", keys: keys,
                                  old: a.mark.description, new: b.mark.description))
            }
        } else if (old["server"] == nil) != (new["server"] == nil) {
            let present = old["server"] ?? new["server"]!
            out.append(Change(kind: "server", id: "server", change: "changed", keys: present.entries?.map(\.key) ?? [],
                              old: old["server"]?.mark.description, new: new["server"]?.mark.description))
        }
        out += compareList("listener", old["listeners"], new["listeners"])
        out += compareList("pool", old["pools"], new["pools"])
        out += compareMap("chain", old["chains"], new["chains"])
        out += compareList("route", old["routes"], new["routes"], order: true)
        return out
    }

    /// Items of a list keyed by their `id` (`listeners[2]` when one has none).
    static func items(_ node: ConfigNode?) -> [(id: String, node: ConfigNode)] {
        guard let list = node?.items else { return [] }
        return list.enumerated().map { i, n in (n["id"]?.scalar ?? "#\(i)", n) }
    }

    static func compareList(_ kind: String, _ a: ConfigNode?, _ b: ConfigNode?, order: Bool = false) -> [Change] {
        let old = items(a), new = items(b)
        return compareEntities(kind, old, new, order: order)
    }

    static func compareMap(_ kind: String, _ a: ConfigNode?, _ b: ConfigNode?) -> [Change] {
        let old = (a?.entries ?? []).map { ($0.key, $0.value) }
        let new = (b?.entries ?? []).map { ($0.key, $0.value) }
        return compareEntities(kind, old, new, order: false)
    }

    static func compareEntities(_ kind: String, _ old: [(id: String, node: ConfigNode)], _ new: [(id: String, node: ConfigNode)],
                                order: Bool) -> [Change] {
        var out: [Change] = []
        var oldIndex: [String: Int] = [:]
        for (i, e) in old.enumerated() where oldIndex[e.id] == nil { oldIndex[e.id] = i }
        var newIndex: [String: Int] = [:]
        for (i, e) in new.enumerated() where newIndex[e.id] == nil { newIndex[e.id] = i }
        for e in old where newIndex[e.id] == nil {
            out.append(Change(kind: kind, id: e.id, change: "removed", keys: [], old: e.node.mark.description, new: nil))
        }
        for e in new {
            guard let i = oldIndex[e.id] else {
                out.append(Change(kind: kind, id: e.id, change: "added", keys: [], old: nil, new: e.node.mark.description))
                continue
            }
            let keys = changedPaths(old[i].node, e.node, prefix: "", depth: 5)
            if !keys.isEmpty {
                out.append(Change(kind: kind, id: e.id, change: "changed", keys: keys,
                                  old: old[i].node.mark.description, new: e.node.mark.description))
            }
        }
        if order { out += moves(kind, old, new, oldIndex) }
        return out
    }

    /// Entities present on both sides whose relative order changed: the ones outside a longest
    /// common subsequence of the two orders (found as a longest increasing subsequence of old
    /// positions taken in new order, O(n log n), since ids are unique).
    static func moves(_ kind: String, _ old: [(id: String, node: ConfigNode)], _ new: [(id: String, node: ConfigNode)],
                      _ oldIndex: [String: Int]) -> [Change] {
        let common = new.filter { oldIndex[$0.id] != nil }
        let positions = common.map { oldIndex[$0.id]! }
        guard positions.count > 1 else { return [] }
        // Patience sorting with back links.
        var tails: [Int] = []      // indices into positions
        var back = [Int](repeating: -1, count: positions.count)
        for (i, p) in positions.enumerated() {
            var lo = 0, hi = tails.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if positions[tails[mid]] < p { lo = mid + 1 } else { hi = mid }
            }
            if lo > 0 { back[i] = tails[lo - 1] }
            if lo == tails.count { tails.append(i) } else { tails[lo] = i }
        }
        var stay = Set<Int>()
        var k = tails.last ?? -1
        while k >= 0 { stay.insert(k); k = back[k] }
        var out: [Change] = []
        let commonIDs = Set(common.map(\.id))
        let oldCommon = old.filter { commonIDs.contains($0.id) }.map(\.id)
        var oldCommonPos: [String: Int] = [:]
        for (i, id) in oldCommon.enumerated() { oldCommonPos[id] = i }
        for (i, e) in common.enumerated() where !stay.contains(i) {
            let before = i > 0 ? common[i - 1].id : nil
            let oldPos = oldCommonPos[e.id] ?? 0
            let oldBefore = oldPos > 0 ? oldCommon[oldPos - 1] : nil
            let now = before.map { "now after `\($0)`" } ?? "now first"
            let was = oldBefore.map { "was after `\($0)`" } ?? "was first"
            out.append(Change(kind: kind, id: e.id, change: "moved", keys: [], old: old[oldIndex[e.id]!].node.mark.description,
                              new: e.node.mark.description, detail: "\(now), \(was): order decides which route matches"))
        }
        return out
    }

    /// The paths under two nodes whose content differs, down to `depth` levels (keys, or list
    /// positions when both lists have the same length); a changed scalar shows both values.
    static func changedPaths(_ a: ConfigNode, _ b: ConfigNode, prefix: String, depth: Int) -> [String] {
        guard !sameContent(a, b) else { return [] }
        let here = prefix.isEmpty ? "(value)" : prefix
        if let x = a.scalar, let y = b.scalar { return ["\(here) (\(x) -> \(y))"] }
        guard depth > 0 else { return [here] }
        if let ia = a.items, let ib = b.items {
            guard ia.count == ib.count else { return ["\(here) (\(ia.count) -> \(ib.count) items)"] }
            var out: [String] = []
            for i in ia.indices { out += changedPaths(ia[i], ib[i], prefix: "\(prefix)[\(i)]", depth: depth - 1) }
            return out
        }
        guard let ea = a.entries, let eb = b.entries else { return [here] }
        var out: [String] = []
        var keys: [String] = ea.map(\.key)
        for e in eb where !keys.contains(e.key) { keys.append(e.key) }
        for k in keys {
            let path = prefix.isEmpty ? k : prefix + "." + k
            switch (a[k], b[k]) {
            case (let x?, let y?): out += changedPaths(x, y, prefix: path, depth: depth - 1)
            case (nil, nil): break
            case (nil, _): out.append(path + " (added)")
            default: out.append(path + " (removed)")
            }
        }
        return out
    }

    /// Whether two nodes hold the same content, positions aside, mapping keys in any order
    /// (their order means nothing). Compared in place: spelling both as `canonical` text cost
    /// most of a diff of 10,000 routes.
    static func sameContent(_ a: ConfigNode, _ b: ConfigNode) -> Bool {
        switch (a.kind, b.kind) {
        case (.scalar(let s, let t), .scalar(let u, let v)):
            if (t == .string) == (v == .string) { return s == u }
            return canonical(a) == canonical(b)
        case (.sequence(let x), .sequence(let y)):
            guard x.count == y.count else { return false }
            for i in x.indices where !sameContent(x[i], y[i]) { return false }
            return true
        case (.mapping(let x), .mapping(let y)):
            guard x.count == y.count else { return false }
            if x.indices.allSatisfy({ x[$0].key == y[$0].key }) {
                for i in x.indices where !sameContent(x[i].value, y[i].value) { return false }
                return true
            }
            let xs = x.sorted { $0.key < $1.key }, ys = y.sorted { $0.key < $1.key }
            for i in xs.indices where xs[i].key != ys[i].key || !sameContent(xs[i].value, ys[i].value) { return false }
            return true
        default:
            return false
        }
    }

    /// The node's content without positions; mapping keys sorted (their order means nothing).
    static func canonical(_ n: ConfigNode) -> String {
        switch n.kind {
        case .scalar(let s, let t): return t == .string ? "\"" + s + "\"" : s
        case .sequence(let items): return "[" + items.map(canonical).joined(separator: ",") + "]"
        case .mapping(let entries):
            return "{" + entries.sorted { $0.key < $1.key }.map { "\"\($0.key)\":" + canonical($0.value) }.joined(separator: ",") + "}"
        }
    }
}
