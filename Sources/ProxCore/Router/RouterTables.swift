import ProxRegex

// The compiled router's data structures. Everything here is built once by `Router.init` and
// read-only afterwards; the hot path reads it through unsafe pointers (no bounds checks, no
// retain/release per element).

/// A fixed-size buffer owned by the table that allocated it.
@usableFromInline
struct FlatBuffer<T> {
    @usableFromInline let base: UnsafeMutablePointer<T>
    @usableFromInline let count: Int

    init(_ elements: [T]) {
        count = elements.count
        base = .allocate(capacity: max(1, elements.count))
        if !elements.isEmpty {
            _ = UnsafeMutableBufferPointer(start: base, count: elements.count).initialize(from: elements)
        }
    }

    @inline(__always) subscript(_ i: Int) -> T { base[i] }

    func free() {
        base.deinitialize(count: count)
        base.deallocate()
    }
}

/// Byte-wise equality of two ranges of `n` bytes.
@inline(__always)
func bytesEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self) != UnsafeRawPointer(b + i).loadUnaligned(as: UInt64.self) {
            return false
        }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

/// True when every byte is below 0x80.
@inline(__always)
func isASCII(_ p: UnsafeRawBufferPointer) -> Bool {
    guard let base = p.baseAddress else { return true }
    let n = p.count
    var i = 0
    while i + 8 <= n {
        if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
        i += 8
    }
    while i < n {
        if base.load(fromByteOffset: i, as: UInt8.self) & 0x80 != 0 { return false }
        i += 1
    }
    return true
}

/// An open-addressing map from byte strings to Int32, with an FNV-1a hash taken from the last
/// byte to the first, so one right-to-left pass over a host yields the hash of every suffix
/// (for wildcard suffixes) and finally of the whole host (for exact hosts).
final class ByteTable {
    struct Slot {
        var hash: UInt64
        var keyStart: Int32
        var keyLength: Int32
        var value: Int32
    }

    static let seed: UInt64 = 0xcbf2_9ce4_8422_2325
    @inline(__always) static func step(_ h: UInt64, _ b: UInt8) -> UInt64 { (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }

    static func hash(_ key: [UInt8]) -> UInt64 {
        var h = seed
        for b in key.reversed() { h = step(h, b) }
        return h
    }

    let count: Int
    let mask: Int
    let shift: UInt64
    let slots: FlatBuffer<Slot>
    let keys: FlatBuffer<UInt8>

    init(_ entries: [(key: [UInt8], value: Int32)]) {
        count = entries.count
        var cap = 4
        while cap < entries.count * 2 { cap <<= 1 }
        mask = cap - 1
        shift = UInt64(64 - cap.trailingZeroBitCount)
        var slots = [Slot](repeating: Slot(hash: 0, keyStart: 0, keyLength: 0, value: -1), count: cap)
        var keys: [UInt8] = []
        for (key, value) in entries {
            let h = ByteTable.hash(key)
            var i = ByteTable.index(h, shift)
            while slots[i].value >= 0 { i = (i + 1) & mask }
            slots[i] = Slot(hash: h, keyStart: Int32(keys.count), keyLength: Int32(key.count), value: value)
            keys.append(contentsOf: key)
        }
        self.slots = FlatBuffer(slots)
        self.keys = FlatBuffer(keys)
    }

    deinit {
        slots.free()
        keys.free()
    }

    @inline(__always) static func index(_ h: UInt64, _ shift: UInt64) -> Int {
        Int(truncatingIfNeeded: (h &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The value stored for the `n` bytes at `p` whose right-to-left hash is `h`, or -1.
    @inline(__always)
    func lookup(_ h: UInt64, _ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        var i = ByteTable.index(h, shift)
        while true {
            let s = slots[i]
            if s.value < 0 { return -1 }
            if s.hash == h && Int(s.keyLength) == n && bytesEqual(keys.base + Int(s.keyStart), p, n) { return s.value }
            i = (i + 1) & mask
        }
    }
}

/// Regex paths filed under one trie node, in route order. Many of them are matched with a
/// `RegexSet`; a few, one by one.
final class RegexSource {
    let routes: [Int32]
    let regexes: [Regex]
    let set: RegexSet?

    /// From this many regexes on, one node's regexes are matched as a set.
    static let setThreshold = 3

    init(_ entries: [(route: Int32, regex: Regex)]) {
        routes = entries.map(\.route)
        regexes = entries.map(\.regex)
        set = entries.count >= RegexSource.setThreshold ? RegexSet(regexes) : nil
    }

    /// How many entries have a route index below `bound`.
    @inline(__always)
    func limit(below bound: Int32) -> Int {
        var lo = 0, hi = routes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if routes[mid] < bound { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// The per-host path structure: a radix tree over path bytes. Each node holds the routes whose
/// exact path ends there, whose prefix ends there, and whose anchored regex has that literal
/// prefix; the root also holds routes without a path and regexes without a literal prefix.
final class PathTable {
    struct Node {
        var labelStart: Int32 = 0
        var labelLength: Int32 = 0
        var childStart: Int32 = 0
        var childCount: Int32 = 0
        var exactStart: Int32 = 0
        var exactCount: Int32 = 0
        var prefixStart: Int32 = 0
        var prefixCount: Int32 = 0
        /// Index into `regexSources`, or -1.
        var regex: Int32 = -1
        /// Lowest route index filed at this node or below it.
        var subtreeMin: Int32 = .max
    }

    let nodes: FlatBuffer<Node>
    let labels: FlatBuffer<UInt8>
    /// First label byte of each child, per node, sorted; `childNodes` in the same order.
    let childBytes: FlatBuffer<UInt8>
    let childNodes: FlatBuffer<Int32>
    let routeLists: FlatBuffer<Int32>
    let regexSources: [RegexSource]
    /// Lowest route index in the table.
    let minRoute: Int32
    let nodeCount: Int

    /// Builder node: a radix tree with edge labels.
    final class BuildNode {
        var label: [UInt8]
        /// Each child's first label byte, and the child: few per node, so found by a scan (a
        /// dictionary per node cost more to hash into and to free than the rest of the build).
        var childBytes: [UInt8] = []
        var children: [BuildNode] = []
        var exact: [Int32] = []
        var prefix: [Int32] = []
        var regex: [(route: Int32, regex: Regex)] = []
        init(_ label: [UInt8]) { self.label = label }
    }

    static func node(for key: [UInt8], in root: BuildNode) -> BuildNode {
        var node = root
        var k = key[...]
        while let first = k.first {
            guard let c = node.childBytes.firstIndex(of: first) else {
                let n = BuildNode(Array(k))
                node.childBytes.append(first)
                node.children.append(n)
                return n
            }
            let child = node.children[c]
            var l = 0
            let label = child.label
            while l < label.count && l < k.count && label[l] == k[k.startIndex + l] { l += 1 }
            if l < label.count {
                // Split the edge: node -> mid(label[..<l]) -> child(label[l...]).
                let mid = BuildNode(Array(label[..<l]))
                child.label = Array(label[l...])
                mid.childBytes.append(child.label[0])
                mid.children.append(child)
                node.children[c] = mid
                node = mid
            } else {
                node = child
            }
            k = k.dropFirst(l)
        }
        return node
    }

    /// `routes` ascending; each is filed by its path pattern.
    init(routes: [Int32], specs: [RouteMatchSpec]) {
        let root = BuildNode([])
        for r in routes {
            switch specs[Int(r)].path {
            case nil:
                root.prefix.append(r)
            case .exact(let p)?:
                PathTable.node(for: Array(p.utf8), in: root).exact.append(r)
            case .prefix(let p)?:
                PathTable.node(for: Array(p.utf8), in: root).prefix.append(r)
            case .regex(let re)? where re.isAnchoredLiteral:
                // `^/api/` matches what the prefix `/api/` matches: filed as one, it costs a
                // walk down the tree and no regex match (~400 instructions a request).
                PathTable.node(for: re.anchoredLiteralPrefix ?? [], in: root).prefix.append(r)
            case .regex(let re)?:
                if let lp = re.anchoredLiteralPrefix, !lp.isEmpty {
                    PathTable.node(for: lp, in: root).regex.append((r, re))
                } else {
                    root.regex.append((r, re))
                }
            }
        }
        // Flatten breadth-first so each node's children are contiguous.
        var nodes: [Node] = []
        var labels: [UInt8] = []
        var childBytes: [UInt8] = []
        var childNodes: [Int32] = []
        var lists: [Int32] = []
        var sources: [RegexSource] = []
        var queue: [BuildNode] = [root]
        var parents: [Int] = [-1]
        var head = 0
        while head < queue.count {
            let b = queue[head]
            var n = Node()
            n.labelStart = Int32(labels.count)
            n.labelLength = Int32(b.label.count)
            labels.append(contentsOf: b.label)
            n.exactStart = Int32(lists.count)
            n.exactCount = Int32(b.exact.count)
            lists.append(contentsOf: b.exact)
            n.prefixStart = Int32(lists.count)
            n.prefixCount = Int32(b.prefix.count)
            lists.append(contentsOf: b.prefix)
            if !b.regex.isEmpty {
                n.regex = Int32(sources.count)
                sources.append(RegexSource(b.regex))
            }
            n.subtreeMin = min(b.exact.first ?? .max, b.prefix.first ?? .max, b.regex.first?.route ?? .max)
            let kids = zip(b.childBytes, b.children).sorted { $0.0 < $1.0 }
            n.childStart = Int32(childBytes.count)
            n.childCount = Int32(kids.count)
            for (byte, child) in kids {
                childBytes.append(byte)
                childNodes.append(Int32(queue.count))
                queue.append(child)
                parents.append(head)
            }
            nodes.append(n)
            head += 1
        }
        // Children come after their parent: fold subtree minimums upwards in reverse.
        for i in stride(from: nodes.count - 1, to: 0, by: -1) {
            let p = parents[i]
            nodes[p].subtreeMin = min(nodes[p].subtreeMin, nodes[i].subtreeMin)
        }
        self.minRoute = nodes[0].subtreeMin
        self.nodeCount = nodes.count
        self.nodes = FlatBuffer(nodes)
        self.labels = FlatBuffer(labels)
        self.childBytes = FlatBuffer(childBytes)
        self.childNodes = FlatBuffer(childNodes)
        self.routeLists = FlatBuffer(lists)
        self.regexSources = sources
    }

    deinit {
        nodes.free()
        labels.free()
        childBytes.free()
        childNodes.free()
        routeLists.free()
    }

    /// The child of `node` whose label starts with `b`, or -1.
    @inline(__always)
    func child(_ node: Node, _ b: UInt8) -> Int32 {
        var lo = Int(node.childStart)
        var hi = lo + Int(node.childCount)
        if hi - lo <= 8 {
            while lo < hi {
                if childBytes[lo] == b { return childNodes[lo] }
                lo += 1
            }
            return -1
        }
        while lo < hi {
            let mid = (lo + hi) >> 1
            let m = childBytes[mid]
            if m == b { return childNodes[mid] }
            if m < b { lo = mid + 1 } else { hi = mid }
        }
        return -1
    }
}
