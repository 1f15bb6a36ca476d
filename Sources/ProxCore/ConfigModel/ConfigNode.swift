/// A place in a config file. Lines and columns are 1-based; columns count Unicode scalars
/// (what editors show). Line 0 means "the file as a whole".
public struct SourceMark: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// Written into one buffer: interpolating (or appending) cost 2,000 instructions, and every
    /// compiled route keeps its origin in this form.
    public var description: String {
        guard line > 0 else { return file }
        var file = file
        return file.withUTF8 { f in
            String(unsafeUninitializedCapacity: f.count + 42) { out in
                var n = 0
                func put(_ b: UInt8) {
                    out[n] = b
                    n += 1
                }
                func putNumber(_ v: Int) {
                    put(UInt8(ascii: ":"))
                    if v < 0 { put(UInt8(ascii: "-")) }
                    let start = n
                    var m = v.magnitude
                    repeat {
                        put(UInt8(ascii: "0") + UInt8(m % 10))
                        m /= 10
                    } while m > 0
                    out[start..<n].reverse()
                }
                for b in f { put(b) }
                putNumber(line)
                putNumber(column)
                return n
            }
        }
    }
}

/// The type a scalar was written as. YAML plain scalars resolve with the YAML 1.2 core schema
/// (what editors use): `off` and `yes` are strings, `true` is a boolean, `8080` an integer.
/// Quoted scalars are always strings.
public enum ScalarType: String, Sendable, Hashable {
    case string, integer, number, boolean, null
}

/// One node of a config document, YAML or JSON, with where it was written and its path in the
/// document (`routes[3].match.path`). The loaders build it; the declaration DSL decodes it.
public struct ConfigNode: Sendable {
    public enum Kind: Sendable {
        case scalar(String, ScalarType)
        case sequence([ConfigNode])
        case mapping([ConfigEntry])
    }

    /// The node's parts, behind one reference. Nodes are copied into their parents' arrays and
    /// into the values decoded from them (`Positioned`, `node` fields): inline, a node was 104
    /// bytes with up to four references to retain per copy, and a route's decoded config 2.3 KB.
    final class Parts: Sendable {
        let kind: Kind
        let mark: SourceMark
        let location: ConfigLocation
        let valueColumn: Int?

        init(kind: Kind, mark: SourceMark, location: ConfigLocation, valueColumn: Int?) {
            self.kind = kind
            self.mark = mark
            self.location = location
            self.valueColumn = valueColumn
        }
    }

    private var parts: Parts

    public var kind: Kind {
        get { parts.kind }
        set { parts = Parts(kind: newValue, mark: parts.mark, location: parts.location, valueColumn: parts.valueColumn) }
    }

    public var mark: SourceMark {
        get { parts.mark }
        set { parts = Parts(kind: parts.kind, mark: newValue, location: parts.location, valueColumn: parts.valueColumn) }
    }

    /// Where the node sits in the document; `path` spells it.
    public var location: ConfigLocation {
        get { parts.location }
        set { parts = Parts(kind: parts.kind, mark: parts.mark, location: newValue, valueColumn: parts.valueColumn) }
    }

    /// For a scalar written on one line exactly as its value (plain, or quoted without
    /// escapes): the column of the value's first character, so that an offset inside the value
    /// (a regex error, a template error) maps to an exact column. nil otherwise.
    public var valueColumn: Int? {
        get { parts.valueColumn }
        set { parts = Parts(kind: parts.kind, mark: parts.mark, location: parts.location, valueColumn: newValue) }
    }

    public init(kind: Kind, mark: SourceMark, path: String, valueColumn: Int? = nil) {
        parts = Parts(kind: kind, mark: mark, location: ConfigLocation(path: path), valueColumn: valueColumn)
    }

    public init(kind: Kind, mark: SourceMark, location: ConfigLocation, valueColumn: Int? = nil) {
        parts = Parts(kind: kind, mark: mark, location: location, valueColumn: valueColumn)
    }

    /// Path from the document root: `listeners[0].address`, `routes[2].match.headers.X-Env`.
    /// Empty for the root. Spelled on each read (`location`).
    public var path: String {
        get { location.path }
        set { location = ConfigLocation(path: newValue) }
    }

    // MARK: reading

    /// The scalar's text, whatever its type; nil for lists and objects.
    public var scalar: String? {
        if case .scalar(let s, _) = kind { return s }
        return nil
    }

    /// The text of a string scalar (not of a number, boolean or null).
    public var string: String? {
        if case .scalar(let s, .string) = kind { return s }
        return nil
    }

    public var isNull: Bool {
        if case .scalar(_, .null) = kind { return true }
        return false
    }

    public var entries: [ConfigEntry]? {
        if case .mapping(let e) = kind { return e }
        return nil
    }

    public var items: [ConfigNode]? {
        if case .sequence(let i) = kind { return i }
        return nil
    }

    /// The value under `key` in a mapping.
    public subscript(key: String) -> ConfigNode? {
        entries?.first { $0.key == key }?.value
    }

    /// The entry for `key` in a mapping (with the key's own position).
    public func entry(_ key: String) -> ConfigEntry? {
        entries?.first { $0.key == key }
    }

    /// What the node is, for messages: "a string", "an integer", "a list", "an object", "null".
    public var kindDescription: String {
        switch kind {
        case .scalar(_, let t):
            switch t {
            case .string: return "a string"
            case .integer: return "an integer"
            case .number: return "a number"
            case .boolean: return "a boolean"
            case .null: return "null"
            }
        case .sequence: return "a list"
        case .mapping: return "an object"
        }
    }

    /// Where byte `offset` inside this scalar's value was written: an exact column when the
    /// value appears verbatim on one line, else the node's own position.
    public func mark(atOffset offset: Int) -> SourceMark {
        guard let col = valueColumn, let s = scalar else { return mark }
        let bytes = Array(s.utf8)
        let prefix = String(decoding: bytes[0..<min(max(0, offset), bytes.count)], as: UTF8.self)
        return SourceMark(file: mark.file, line: mark.line, column: col + prefix.unicodeScalars.count)
    }

    // MARK: building

    /// The path of the value under `key` of a mapping at `parent`.
    public static func childPath(_ parent: String, key: String) -> String {
        let plain = !key.isEmpty && key.utf8.allSatisfy { b in
            isTokenByte(b) && b != UInt8(ascii: ".") && b != UInt8(ascii: "[") && b != UInt8(ascii: "]")
                && b != UInt8(ascii: "\"")
        }
        if !plain {
            var escaped = ""
            for c in key { if c == "\"" || c == "\\" { escaped.append("\\") }; escaped.append(c) }
            return parent + "[\"" + escaped + "\"]"
        }
        return parent.isEmpty ? key : parent + "." + key
    }

    /// The path of item `index` of a list at `parent`.
    public static func childPath(_ parent: String, index: Int) -> String {
        parent + "[\(index)]"
    }

    /// A scalar node (for synthesised values and tests).
    public static func scalar(_ text: String, _ type: ScalarType = .string, at mark: SourceMark, path: String) -> ConfigNode {
        ConfigNode(kind: .scalar(text, type), mark: mark, path: path)
    }
}

/// Where a node sits in its document: its container's location and its key or index there.
/// The path text (`routes[1234].match.path.exact`) is spelled only when read, which is when a
/// diagnostic names it: a loader building one path string per node spent more on them than on
/// the rest of the node.
public struct ConfigLocation: Sendable {
    /// A container's location, shared by all its children (one allocation per container).
    public final class Parent: Sendable {
        public let location: ConfigLocation
        public init(_ location: ConfigLocation) { self.location = location }
    }

    enum Step: Sendable {
        /// A path given whole (the root, synthesised nodes).
        case whole(String)
        case key(String)
        case index(Int)
    }

    let parent: Parent?
    let step: Step

    /// A location given by its path text.
    public init(path: String) {
        parent = nil
        step = .whole(path)
    }

    /// The value under `key` of the mapping at `parent`.
    public init(_ parent: Parent, key: String) {
        self.parent = parent
        step = .key(key)
    }

    /// Item `index` of the list at `parent`.
    public init(_ parent: Parent, index: Int) {
        self.parent = parent
        step = .index(index)
    }

    /// The document's root.
    public static let root = ConfigLocation(path: "")

    /// The path text, as `ConfigNode.childPath` spells it. Spelled from the root down without
    /// recursion: a diagnostic may be reported 1,500 levels deep (`YAMLLoader.maxDepth`).
    public var path: String {
        if case .whole(let p) = step { return p }
        var steps = [step]
        var up = parent
        while let p = up {
            steps.append(p.location.step)
            up = p.location.parent
        }
        var path = ""
        for s in steps.reversed() {
            switch s {
            case .whole(let p): path = p
            case .key(let k): path = ConfigNode.childPath(path, key: k)
            case .index(let i): path = ConfigNode.childPath(path, index: i)
            }
        }
        return path
    }
}

/// One `key: value` of a mapping, with the key's own position.
public struct ConfigEntry: Sendable {
    public var key: String
    public var keyMark: SourceMark
    public var value: ConfigNode

    public init(key: String, keyMark: SourceMark, value: ConfigNode) {
        self.key = key
        self.keyMark = keyMark
        self.value = value
    }
}

/// A decoded value with the node it came from, for checks that run after decoding
/// (references, templates compiled per route) and must point at the place it was written.
public struct Positioned<Value> {
    public var value: Value
    public var node: ConfigNode

    public init(_ value: Value, node: ConfigNode) {
        self.value = value
        self.node = node
    }
}

extension Positioned: Sendable where Value: Sendable {}
