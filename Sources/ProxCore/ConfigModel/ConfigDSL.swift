/// The config-declaration DSL.
///
/// A config type declares its fields once, with `ConfigField.field(...)`: key, Swift property,
/// value type, required or default, and a doc string. That one declaration drives
///
/// - decoding from a positioned `ConfigNode`, with diagnostics that name file, line, column and
///   path (wrong type, missing required key, unknown key with did-you-mean, bad enum, out of
///   range, ...), reporting every problem rather than stopping at the first;
/// - the JSON Schema (2020-12) that `prox schema` prints and editors use;
/// - the reference tables of docs/CONFIG.md.
///
/// ```swift
/// struct BodyLimitConfig: ConfigObject {
///     var maxBytes: Int64 = 0
///     static let doc = "Refuses request bodies larger than a limit."
///     static var fields: [ConfigField<Self>] {[
///         .field("max_bytes", \.maxBytes, .size(min: 0), required: true, doc: "Largest body accepted."),
///     ]}
/// }
/// ```
public protocol ConfigObject {
    /// The value with every default; decoding starts from it and sets the fields written.
    init()
    /// One or two sentences: what this object configures.
    static var doc: String { get }
    static var fields: [ConfigField<Self>] { get }
    /// Name of the type in the schema's `$defs` and the docs' headings. Default: the Swift name.
    static var schemaName: String { get }
    /// Constraints across keys (exactly one of, at most one of, requires).
    static var rules: [ConfigRule] { get }
    /// When set, a plain value may stand for the whole object: `proxy: api` means
    /// `proxy: {pool: api}`.
    static var shorthand: String? { get }
    /// When true, `key:` with no value (null) means an object with every default.
    static var acceptsNull: Bool { get }
    /// A hint for an unknown key beyond did-you-mean (a key that belongs elsewhere).
    static func hint(forUnknownKey key: String) -> String?
    /// Checks that need several fields at once; runs after every field was decoded.
    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder)
}

extension ConfigObject {
    /// `_typeName`, which `String(describing:)` comes to for a type, without its dynamic casts:
    /// the first cast per type scans every protocol conformance in the binary (1.2 M
    /// instructions; filter registration asks for each filter's config).
    public static var schemaName: String { _typeName(Self.self, qualified: false) }
    public static var rules: [ConfigRule] { [] }
    public static var shorthand: String? { nil }
    public static var acceptsNull: Bool { false }
    public static func hint(forUnknownKey key: String) -> String? { nil }
    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {}
}

/// A constraint across keys of one object.
public enum ConfigRule: Sendable {
    /// Exactly one of these keys must be present.
    case exactlyOne([String])
    /// At most one of these keys may be present.
    case atMostOne([String])
    /// When the first key is present, the others must be too.
    case requires(String, [String])

    var docText: String {
        func list(_ k: [String]) -> String { k.map { "`\($0)`" }.joined(separator: ", ") }
        switch self {
        case .exactlyOne(let k): return "Exactly one of \(list(k))."
        case .atMostOne(let k): return "At most one of \(list(k))."
        case .requires(let a, let b): return "`\(a)` requires \(list(b))."
        }
    }

    var schema: (String, JSONValue) {
        func req(_ k: [String]) -> JSONValue { .object([("required", .array(k.map { .string($0) }))]) }
        switch self {
        case .exactlyOne(let keys):
            return ("oneOf", .array(keys.map { req([$0]) }))
        case .atMostOne(let keys):
            var pairs: [JSONValue] = []
            for i in keys.indices { for j in keys.indices where j > i { pairs.append(req([keys[i], keys[j]])) } }
            return ("not", .object([("anyOf", .array(pairs))]))
        case .requires(let a, let b):
            return ("dependentRequired", .object([(a, .array(b.map { .string($0) }))]))
        }
    }
}

// MARK: - Suggestions

/// The candidate a misspelt `name` most likely meant: the closest by edit distance, else one
/// that starts with `name` or that `name` starts with (`set_response` -> `set_response_header`).
public func suggestion(for name: String, in candidates: some Collection<String>) -> String? {
    if let c = closest(name, in: candidates) { return c }
    let n = name.lowercased()
    guard n.count >= 3 else { return nil }
    let related = candidates.filter { c in
        let l = c.lowercased()
        return l.hasPrefix(n) || n.hasPrefix(l)
    }
    return related.count == 1 ? related.first : nil
}

// MARK: - Decoder

/// Collects diagnostics while decoding. Decoding never stops at the first problem: a field
/// that fails keeps its default and the rest is still checked.
public struct ConfigDecoder {
    public var diagnostics: [Diagnostic] = []
    /// The filters a chain entry may name.
    public let filters: [FilterDescriptor]
    /// JIT-compile the regexes decoded. False when the config is only checked (`prox
    /// validate`): a regex then still matches, interpreted, and compiling is several times cheaper.
    public var jitRegexes = true

    /// Each object type's fields, built once per decoder: `T.fields` builds its declarations
    /// (and their closures) anew at every call, which cost more than the decoding itself when a
    /// config has thousands of routes.
    private let fieldTables = FieldTables()

    public init(filters: [FilterDescriptor] = []) {
        self.filters = filters
    }

    public var hasErrors: Bool { diagnostics.hasErrors }

    /// `T.fields`, built on first use.
    func fieldTable<T: ConfigObject>(_ type: T.Type) -> FieldTable {
        let id = ObjectIdentifier(T.self)
        if let t = fieldTables.tables[id] { return t }
        let t = FieldTable(T.fields)
        fieldTables.tables[id] = t
        return t
    }

    public mutating func error(_ node: ConfigNode, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: node.mark, path: node.path, message, hint: hint))
    }

    public mutating func error(at mark: SourceMark, path: String, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: mark, path: path, message, hint: hint))
    }

    public mutating func warning(_ node: ConfigNode, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: node.mark, path: node.path, severity: .warning, message, hint: hint))
    }

    public mutating func decode<V>(_ type: ConfigType<V>, from node: ConfigNode) -> V? {
        type.decodeNode(node, &self)
    }

    public mutating func decode<T: ConfigObject>(_ type: T.Type, from node: ConfigNode) -> T? {
        var node = node
        if case .scalar(_, let st) = node.kind {
            if st == .null && T.acceptsNull {
                node = ConfigNode(kind: .mapping([]), mark: node.mark, location: node.location)
            } else if let key = T.shorthand, st != .null {
                node = ConfigNode(kind: .mapping([ConfigEntry(key: key, keyMark: node.mark, value: node)]),
                                  mark: node.mark, location: node.location)
            }
        }
        guard let entries = node.entries else {
            let also = T.shorthand.map { " (or a single value for `\($0)`)" } ?? ""
            error(node, "expected an object\(also), found \(node.kindDescription)")
            return nil
        }
        let table = fieldTable(T.self)
        var value = T()
        for e in entries {
            guard let i = table.field(e.key) else {
                var hint: String? = T.hint(forUnknownKey: e.key)
                if hint == nil {
                    if let c = suggestion(for: e.key, in: table.keys) {
                        hint = "did you mean '\(c)'?"
                    } else {
                        hint = "known keys: " + table.keys.joined(separator: ", ")
                    }
                }
                error(at: e.keyMark, path: ConfigNode.childPath(node.path, key: e.key), "unknown key '\(e.key)'", hint: hint)
                continue
            }
            withUnsafeMutablePointer(to: &value) { table.apply[i](e.value, UnsafeMutableRawPointer($0), &self) }
        }
        for (key, doc) in table.required where !entries.contains(where: { $0.key == key }) {
            error(node, "missing required key '\(key)'", hint: doc.isEmpty ? nil : "\(key): \(doc)")
        }
        if !table.rules.isEmpty {
            for rule in table.rules { checkRule(rule, entries: entries, node: node) }
        }
        value.validate(node, &self)
        return value
    }

    mutating func checkRule(_ rule: ConfigRule, entries: [ConfigEntry], node: ConfigNode) {
        func list(_ k: [String]) -> String { k.map { "'\($0)'" }.joined(separator: ", ") }
        switch rule {
        case .exactlyOne(let keys), .atMostOne(let keys):
            // The first two entries present (no array of copies: this runs for every object).
            var first = -1, second = -1
            for i in entries.indices where keys.contains(entries[i].key) {
                if first < 0 { first = i } else { second = i; break }
            }
            if second >= 0 {
                let e = entries[second]
                error(at: e.keyMark, path: ConfigNode.childPath(node.path, key: e.key),
                      "'\(e.key)' cannot be used together with '\(entries[first].key)'",
                      hint: "use \(rule.isExactlyOne ? "exactly" : "at most") one of \(list(keys))")
            } else if first < 0, rule.isExactlyOne {
                error(node, "needs one of \(list(keys))")
            }
        case .requires(let key, let others):
            guard let e = entries.first(where: { $0.key == key }) else { return }
            for o in others where !entries.contains(where: { $0.key == o }) {
                error(at: e.keyMark, path: ConfigNode.childPath(node.path, key: key), "'\(key)' needs '\(o)' too")
            }
        }
    }
}

/// The field tables a decoder has built, by object type.
final class FieldTables {
    var tables: [ObjectIdentifier: FieldTable] = [:]
}

/// One object type's fields as decoding needs them, with nothing generic left: decoding runs
/// unspecialised (the object types live in other modules), where every use of a generic
/// `ConfigField<Root>` value fetches its type metadata at run time (a lookup of several hundred
/// instructions, once per field per object decoded).
final class FieldTable {
    /// Decodes a node into the field of the object at the pointer (a `Root`).
    typealias Apply = (ConfigNode, UnsafeMutableRawPointer, inout ConfigDecoder) -> Void

    /// The keys in declaration order (for did-you-mean and "known keys").
    let keys: [String]
    /// Each key's length and first bytes (`signature`), to find a key by comparing integers:
    /// hashing the key of every entry decoded cost more than the rest of finding its field.
    let signatures: [UInt64]
    let apply: [Apply]
    /// Required keys, with their docs (for the hint).
    let required: [(key: String, doc: String)]
    let rules: [ConfigRule]

    init<Root: ConfigObject>(_ fields: [ConfigField<Root>]) {
        keys = fields.map(\.key)
        signatures = keys.map(Self.signature)
        apply = fields.map { f in
            let apply = f.apply
            return { node, root, d in apply(node, &root.assumingMemoryBound(to: Root.self).pointee, &d) }
        }
        required = fields.filter(\.isRequired).map { ($0.key, $0.doc) }
        rules = Root.rules
    }

    /// The position in `apply` of the field declared first with `key`.
    func field(_ key: String) -> Int? {
        let sig = Self.signature(key)
        for i in signatures.indices where signatures[i] == sig && keys[i] == key { return i }
        return nil
    }

    /// The key's UTF-8 length in the top byte and its first seven bytes below.
    static func signature(_ key: String) -> UInt64 {
        func sign(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
            var sig = UInt64(truncatingIfNeeded: bytes.count) << 56
            for i in 0..<min(7, bytes.count) { sig |= UInt64(bytes[i]) << (8 * UInt64(i)) }
            return sig
        }
        if let s = key.utf8.withContiguousStorageIfAvailable(sign) { return s }
        return Array(key.utf8).withUnsafeBufferPointer(sign)
    }
}

extension ConfigRule {
    var isExactlyOne: Bool { if case .exactlyOne = self { return true }; return false }
}

// MARK: - Fields

/// One key of a config object, declared once.
public struct ConfigField<Root> {
    public let key: String
    public let doc: String
    public let isRequired: Bool
    /// The type as the docs show it ("duration", "list of string", "[Route](#route)").
    public let typeDocName: String
    /// Default as the docs show it (markdown); nil when there is none worth showing.
    public let defaultDoc: (Root) -> String?
    let schema: (inout SchemaContext) -> JSONValue
    let defaultValue: (Root) -> JSONValue?
    let apply: (ConfigNode, inout Root, inout ConfigDecoder) -> Void

    // The builders below are `@inlinable`, so that their closures are specialised where a
    // config type declares its fields: run generic, each decoded value looked up the metadata
    // of `Optional<V>`, `Positioned<V>` or `[V]` at run time (several hundred instructions each).
    @usableFromInline
    init(key: String, doc: String, isRequired: Bool, typeDocName: String, defaultDoc: @escaping (Root) -> String?,
         schema: @escaping (inout SchemaContext) -> JSONValue, defaultValue: @escaping (Root) -> JSONValue?,
         apply: @escaping (ConfigNode, inout Root, inout ConfigDecoder) -> Void) {
        self.key = key
        self.doc = doc
        self.isRequired = isRequired
        self.typeDocName = typeDocName
        self.defaultDoc = defaultDoc
        self.schema = schema
        self.defaultValue = defaultValue
        self.apply = apply
    }

    /// A field whose value always exists (the default comes from `Root.init()`).
    @inlinable
    public static func field<V>(_ key: String, _ path: WritableKeyPath<Root, V>, _ type: ConfigType<V>,
                                required: Bool = false, default defaultText: String? = nil, doc: String) -> ConfigField {
        ConfigField(
            key: key, doc: doc, isRequired: required, typeDocName: type.docName,
            defaultDoc: { root in
                if required { return nil }
                if let t = defaultText { return t }
                return type.renderValue(root[keyPath: path]).map { "`" + docText($0) + "`" }
            },
            schema: { ctx in type.schema(&ctx) },
            defaultValue: { root in required ? nil : type.renderValue(root[keyPath: path]) },
            apply: { node, root, d in if let v = type.decodeNode(node, &d) { root[keyPath: path] = v } })
    }

    /// A field that may be absent (nil).
    @inlinable
    public static func field<V>(_ key: String, _ path: WritableKeyPath<Root, V?>, _ type: ConfigType<V>,
                                required: Bool = false, default defaultText: String? = nil, doc: String) -> ConfigField {
        ConfigField(
            key: key, doc: doc, isRequired: required, typeDocName: type.docName,
            defaultDoc: { root in
                if required { return nil }
                if let t = defaultText { return t }
                return root[keyPath: path].flatMap { type.renderValue($0) }.map { "`" + docText($0) + "`" }
            },
            schema: { ctx in type.schema(&ctx) },
            defaultValue: { root in required ? nil : root[keyPath: path].flatMap { type.renderValue($0) } },
            apply: { node, root, d in if let v = type.decodeNode(node, &d) { root[keyPath: path] = v } })
    }
}

@usableFromInline
func docText(_ v: JSONValue) -> String {
    switch v {
    case .string(let s): return s
    default: return v.compact()
    }
}

// MARK: - Value types

/// How one kind of value is decoded, described in the schema, and shown in the docs.
public struct ConfigType<Value> {
    public let docName: String
    @usableFromInline let makeSchema: (inout SchemaContext) -> JSONValue
    @usableFromInline let decodeNode: (ConfigNode, inout ConfigDecoder) -> Value?
    @usableFromInline let renderValue: (Value) -> JSONValue?

    /// - Parameters:
    ///   - docName: the type as the docs show it.
    ///   - schema: the JSON Schema of the value (without description; fields add theirs).
    ///   - decode: decodes a node, reporting problems to the decoder; nil when it failed.
    ///   - render: the value as JSON, for showing a default; nil for "not shown".
    public init(docName: String, schema: @escaping (inout SchemaContext) -> JSONValue,
                decode: @escaping (ConfigNode, inout ConfigDecoder) -> Value?,
                render: @escaping (Value) -> JSONValue? = { _ in nil }) {
        self.docName = docName
        self.makeSchema = schema
        self.decodeNode = decode
        self.renderValue = render
    }

    public func schema(_ ctx: inout SchemaContext) -> JSONValue { makeSchema(&ctx) }
    public func decode(_ node: ConfigNode, _ decoder: inout ConfigDecoder) -> Value? { decodeNode(node, &decoder) }

    /// The same type with an extra check on each decoded value; return false (after reporting)
    /// to reject it.
    @inlinable
    public func checked(_ check: @escaping (Value, ConfigNode, inout ConfigDecoder) -> Bool) -> ConfigType<Value> {
        let inner = decodeNode
        return ConfigType(docName: docName, schema: makeSchema, decode: { node, d in
            guard let v = inner(node, &d) else { return nil }
            return check(v, node, &d) ? v : nil
        }, render: renderValue)
    }

    /// The same type converted after decoding; `transform` may report and return nil.
    @inlinable
    public func map<U>(docName: String? = nil, _ transform: @escaping (Value, ConfigNode, inout ConfigDecoder) -> U?,
                       render: @escaping (U) -> JSONValue? = { _ in nil }) -> ConfigType<U> {
        let inner = decodeNode
        return ConfigType<U>(docName: docName ?? self.docName, schema: makeSchema, decode: { node, d in
            guard let v = inner(node, &d) else { return nil }
            return transform(v, node, &d)
        }, render: render)
    }

    /// The same type with a different schema or doc name.
    public func describing(docName: String? = nil, schema: ((inout SchemaContext) -> JSONValue)? = nil) -> ConfigType<Value> {
        ConfigType(docName: docName ?? self.docName, schema: schema ?? makeSchema, decode: decodeNode, render: renderValue)
    }

    /// The value together with the node it came from.
    @inlinable
    public var positioned: ConfigType<Positioned<Value>> {
        let inner = decodeNode, render = renderValue
        return ConfigType<Positioned<Value>>(docName: docName, schema: makeSchema, decode: { node, d in
            inner(node, &d).map { Positioned($0, node: node) }
        }, render: { render($0.value) })
    }
}

extension ConfigType {
    @usableFromInline
    static func typeMismatch(_ expected: String, _ node: ConfigNode, _ d: inout ConfigDecoder, hint: String? = nil) {
        var found = node.kindDescription
        if case .scalar(let s, let t) = node.kind, t != .null, t != .string { found += " (\(s))" }
        d.error(node, "expected \(expected), found \(found)", hint: hint)
    }

    /// A list of these.
    @inlinable
    public func list(minItems: Int = 0) -> ConfigType<[Value]> {
        let item = self
        return ConfigType<[Value]>(
            docName: "list of " + docName,
            schema: { ctx in
                var s: [(String, JSONValue)] = [("type", .string("array")), ("items", item.schema(&ctx))]
                if minItems > 0 { s.append(("minItems", .int(Int64(minItems)))) }
                return .object(s)
            },
            decode: { node, d in
                guard let items = node.items else { ConfigType.typeMismatch("a list", node, &d); return nil }
                if items.count < minItems {
                    d.error(node, "needs at least \(minItems) item\(minItems == 1 ? "" : "s")")
                }
                // Sized once: a list of routes grown by doubling copied each (over 2 KB) several
                // times and left a third of its buffer unused.
                var out: [Value] = []
                out.reserveCapacity(items.count)
                for i in items { if let v = item.decodeNode(i, &d) { out.append(v) } }
                return out
            },
            render: { values in .array(values.compactMap { item.renderValue($0) }) })
    }

    /// A list of these, or a single one standing for a list of one.
    @inlinable
    public func listOrSingle(minItems: Int = 1) -> ConfigType<[Value]> {
        let item = self, asList = list(minItems: minItems)
        return ConfigType<[Value]>(
            docName: docName + " or list of " + docName,
            schema: { ctx in .object([("anyOf", .array([item.schema(&ctx), asList.schema(&ctx)]))]) },
            decode: { node, d in
                if node.items != nil { return asList.decodeNode(node, &d) }
                return item.decodeNode(node, &d).map { [$0] }
            },
            render: asList.renderValue)
    }

    /// An object whose keys are names (header names, chain ids) and whose values are these,
    /// in the order written. `key` checks each key (report and return false to reject).
    public func map(keyDocName: String = "name", keySchema: JSONValue? = nil,
                    key: ((String, ConfigNode, inout ConfigDecoder) -> Bool)? = nil) -> ConfigType<[ConfigMapEntry<Value>]> {
        let item = self
        return ConfigType<[ConfigMapEntry<Value>]>(
            docName: "map of \(keyDocName) to " + docName,
            schema: { ctx in
                var s: [(String, JSONValue)] = [("type", .string("object"))]
                if let k = keySchema { s.append(("propertyNames", k)) }
                s.append(("additionalProperties", item.schema(&ctx)))
                return .object(s)
            },
            decode: { node, d in
                guard let entries = node.entries else { ConfigType.typeMismatch("an object", node, &d); return nil }
                var out: [ConfigMapEntry<Value>] = []
                let here = ConfigLocation.Parent(node.location)
                for e in entries {
                    let keyNode = ConfigNode(kind: .scalar(e.key, .string), mark: e.keyMark,
                                             location: ConfigLocation(here, key: e.key))
                    if let check = key, !check(e.key, keyNode, &d) { continue }
                    if let v = item.decodeNode(e.value, &d) { out.append(ConfigMapEntry(key: e.key, keyNode: keyNode, value: v)) }
                }
                return out
            },
            render: { entries in
                .object(entries.compactMap { e in item.renderValue(e.value).map { (e.key, $0) } })
            })
    }
}

/// One `name: value` of a map-typed field, in the order written.
public struct ConfigMapEntry<Value> {
    public var key: String
    /// The key as a node (its position and path), for messages about the key.
    public var keyNode: ConfigNode
    public var value: Value

    public init(key: String, keyNode: ConfigNode, value: Value) {
        self.key = key
        self.keyNode = keyNode
        self.value = value
    }
}

extension ConfigMapEntry: Sendable where Value: Sendable {}

extension ConfigType where Value: ConfigObject {
    /// A nested object, declared with its own fields.
    @inlinable
    public static func object(_ type: Value.Type) -> ConfigType<Value> {
        ConfigType(
            docName: "[\(Value.schemaName)](#\(Value.schemaName.lowercased()))",
            schema: { ctx in ctx.reference(Value.self) },
            decode: { node, d in d.decode(Value.self, from: node) })
    }
}

// MARK: - Schema context

/// Builds the JSON Schema: collects the `$defs` of every object type reached, in a stable
/// order, and the list of object types for the docs.
public struct SchemaContext {
    /// The filters a chain entry may name.
    public let filters: [FilterDescriptor]
    public private(set) var definitions: [String: JSONValue] = [:]
    /// Object types in the order they were first reached.
    public private(set) var objectTypes: [any ConfigObject.Type] = []
    private var names: Set<String> = []

    public init(filters: [FilterDescriptor] = []) {
        self.filters = filters
    }

    /// `{"$ref": "#/$defs/Name"}`, defining `Name` on first use.
    public mutating func reference<T: ConfigObject>(_ type: T.Type) -> JSONValue {
        let name = T.schemaName
        if !names.contains(name) {
            names.insert(name)
            objectTypes.append(type)
            definitions[name] = T.objectSchema(&self)
        }
        return .object([("$ref", .string("#/$defs/\(name)"))])
    }

    /// `{"$ref": "#/$defs/name"}` for a schema that is not a `ConfigObject` (built on first use).
    public mutating func reference(named name: String, _ build: (inout SchemaContext) -> JSONValue) -> JSONValue {
        if !names.contains(name) {
            names.insert(name)
            definitions[name] = build(&self)
        }
        return .object([("$ref", .string("#/$defs/\(name)"))])
    }

    /// The definitions, sorted by name, as a `$defs` value.
    public var definitionsValue: JSONValue {
        .object(definitions.keys.sorted().map { ($0, definitions[$0]!) })
    }
}

extension JSONValue {
    /// An object with these members set (replacing existing ones of the same name).
    public func setting(_ members: [(String, JSONValue)]) -> JSONValue {
        guard case .object(var o) = self else { return self }
        for (k, v) in members {
            if let i = o.firstIndex(where: { $0.0 == k }) { o[i].1 = v } else { o.append((k, v)) }
        }
        return .object(o)
    }
}

extension ConfigObject {
    /// This type's schema: its properties with descriptions and defaults, its required keys,
    /// `additionalProperties: false`, and its rules.
    public static func objectSchema(_ ctx: inout SchemaContext) -> JSONValue {
        let defaults = Self()
        var props: [(String, JSONValue)] = []
        for f in fields {
            var extra: [(String, JSONValue)] = [("description", .string(f.doc))]
            if let d = f.defaultValue(defaults) { extra.append(("default", d)) }
            props.append((f.key, f.schema(&ctx).setting(extra)))
        }
        var obj: [(String, JSONValue)] = [("type", .string("object"))]
        if shorthand == nil { obj.append(("description", .string(doc))) }
        obj.append(("properties", .object(props)))
        let required = fields.filter(\.isRequired).map { JSONValue.string($0.key) }
        if !required.isEmpty { obj.append(("required", .array(required))) }
        obj.append(("additionalProperties", .bool(false)))
        let ruleSchemas = rules.map(\.schema)
        if ruleSchemas.count == 1 {
            obj.append(ruleSchemas[0])
        } else if ruleSchemas.count > 1 {
            obj.append(("allOf", .array(ruleSchemas.map { .object([$0]) })))
        }
        var schema = JSONValue.object(obj)
        if let key = shorthand, let f = fields.first(where: { $0.key == key }) {
            schema = .object([("description", .string(doc)), ("anyOf", .array([f.schema(&ctx), schema]))])
        }
        if acceptsNull {
            schema = .object([("anyOf", .array([schema, .object([("type", .string("null"))])]))])
        }
        return schema
    }
}
