/// A filter: a config type declared with the DSL, and a factory that turns a decoded config
/// into an immutable `Stage` at compile time.
///
/// A filter lives in one folder (`Sources/ProxFilters/<Name>/` or `filters/<name>/`) with
/// `<Name>Config`, `<Name>Factory` and `<Name>Stage`, and is registered with one line:
/// `FilterDescriptor(<Name>Factory.self)`, in a `FilterRegistry`.
///
/// In a config, a chain entry names the filter and holds its config:
///
/// ```yaml
/// chain:
///   - request_id: {header: X-Request-Id, trust_incoming: true}
///   - body_limit: {max_bytes: 1MiB}
///   - request_id          # a filter with no required keys, all defaults
/// ```
public protocol FilterFactory: Sendable {
    associatedtype Config: ConfigObject
    /// The key a chain entry uses (`request_id`); also the stage's `kind` in traces.
    static var name: String { get }
    /// One sentence for the docs and `prox filters`.
    static var summary: String { get }
    /// Builds the stage for one route. Runs at compile time, once per route that uses the
    /// entry (a named chain shared by several routes is built for each, because templates
    /// compile against the route's capture groups). Report problems through `context` and
    /// return nil; never do I/O here.
    static func makeStage(_ config: Config, _ context: inout FilterBuildContext) -> (any Stage)?
}

/// A registered filter: what the compiler, the schema generator and the docs know of it.
public struct FilterDescriptor: Sendable {
    public let name: String
    public let summary: String
    /// Whether `- name` alone (all defaults) is a valid entry.
    public let worksWithDefaults: Bool
    /// The factory's fully qualified name (`ProxFilterTenant.TenantFactory`), for messages.
    public let factoryTypeName: String
    let configSchema: @Sendable (inout SchemaContext) -> JSONValue
    let configSchemaName: String
    let decodeEntry: @Sendable (ConfigNode, inout ConfigDecoder) -> DecodedFilter?
    let docSection: @Sendable (Int) -> String

    public init<F: FilterFactory>(_ factory: F.Type) {
        name = F.name
        summary = F.summary
        factoryTypeName = _typeName(F.self, qualified: true)  // `String(reflecting:)`'s text, without its casts (`schemaName`)
        worksWithDefaults = {
            var d = ConfigDecoder()
            let empty = ConfigNode(kind: .mapping([]), mark: SourceMark(file: "", line: 0, column: 0), path: "")
            _ = d.decode(F.Config.self, from: empty)
            return !d.hasErrors
        }()
        configSchemaName = F.Config.schemaName
        configSchema = { ctx in ctx.reference(F.Config.self) }
        docSection = { level in
            var out = String(repeating: "#", count: level) + " `\(F.name)`\n\n" + F.summary + "\n\n"
            var ctx = SchemaContext()
            _ = ctx.reference(F.Config.self)
            for t in ctx.objectTypes {
                out += ConfigReference.sectionOf(t, level: level + 1)
            }
            return out
        }
        decodeEntry = { node, d in
            guard let config = d.decode(F.Config.self, from: node) else { return nil }
            return DecodedFilter(name: F.name, node: node) { ctx in F.makeStage(config, &ctx) }
        }
    }

    /// Decodes this filter's config from `node` (the value under the filter's name).
    public func decode(_ node: ConfigNode, _ decoder: inout ConfigDecoder) -> DecodedFilter? {
        decodeEntry(node, &decoder)
    }

    /// The `$ref` to this filter's config schema.
    public func schema(_ ctx: inout SchemaContext) -> JSONValue { configSchema(&ctx) }

    /// The filter's config reference in markdown (heading at `level`, summary, every key of its
    /// config and of the object types it uses): the section docs/CONFIG.md and `prox filters NAME` show.
    public func reference(level: Int = 3) -> String { docSection(level) }

    /// The name of the config type in the schema and the docs.
    public var configTypeName: String { configSchemaName }
}

/// A chain entry whose config decoded; builds its stage per route.
public struct DecodedFilter {
    public let name: String
    /// The node of the filter's config (the value under its name).
    public let node: ConfigNode
    let build: (inout FilterBuildContext) -> (any Stage)?

    public init(name: String, node: ConfigNode, build: @escaping (inout FilterBuildContext) -> (any Stage)?) {
        self.name = name
        self.node = node
        self.build = build
    }

    public func makeStage(_ context: inout FilterBuildContext) -> (any Stage)? { build(&context) }
}

/// What a factory gets when it builds a stage for one route.
public struct FilterBuildContext {
    public let routeID: String
    /// The capture groups of the route's path and host regexes, for templates.
    public let scope: Template.CaptureScope
    public var diagnostics: [Diagnostic] = []
    /// Set when a template compiled here uses the path or host captures.
    public var usesPathCaptures = false
    public var usesHostCaptures = false
    /// Added as the hint of every diagnostic without one (e.g. which route uses a shared chain).
    public var note: String?

    public init(routeID: String, scope: Template.CaptureScope, note: String? = nil) {
        self.routeID = routeID
        self.scope = scope
        self.note = note
    }

    public mutating func error(_ node: ConfigNode, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: node.mark, path: node.path, message, hint: hint ?? note))
    }

    public mutating func warning(_ node: ConfigNode, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: node.mark, path: node.path, severity: .warning, message, hint: hint ?? note))
    }

    /// Compiles a template against the route's captures; reports a syntax error at its column.
    public mutating func template(_ source: Positioned<String>) -> Template? {
        do {
            let t = try Template(source.value, scope: scope)
            if t.usesPathCaptures { usesPathCaptures = true }
            if t.usesHostCaptures { usesHostCaptures = true }
            return t
        } catch {
            diagnostics.append(Diagnostic(at: source.node.mark(atOffset: error.offset), path: source.node.path,
                                          "invalid template: \(error.message) (at offset \(error.offset))", hint: note))
            return nil
        }
    }
}

extension ConfigType where Value == DecodedFilter {
    /// One chain entry: `- name: {config}`, `- name:` or `- name` (defaults).
    public static var filterEntry: ConfigType<DecodedFilter> {
        ConfigType(
            docName: "[filter entry](#filters)",
            schema: { ctx in ctx.reference(named: "FilterEntry") { ctx in
                var alternatives: [JSONValue] = []
                var bare: [JSONValue] = []
                for f in ctx.filters {
                    let ref = f.schema(&ctx)
                    alternatives.append(.object([
                        ("type", .string("object")),
                        ("description", .string(f.summary)),
                        ("properties", .object([(f.name, .object([
                            ("description", .string(f.summary)),
                            ("anyOf", .array([ref, .object([("type", .string("null"))])])),
                        ]))])),
                        ("required", .array([.string(f.name)])),
                        ("additionalProperties", .bool(false)),
                    ]))
                    if f.worksWithDefaults { bare.append(.string(f.name)) }
                }
                if !bare.isEmpty {
                    alternatives.append(.object([("description", .string("A filter with every default.")),
                                                 ("type", .string("string")), ("enum", .array(bare))]))
                }
                return .object([("description", .string("One filter of a chain: `- name: {config}`, or `- name` for a filter whose keys all have defaults.")),
                                ("oneOf", .array(alternatives))])
            } },
            decode: { node, d in
                let names = d.filters.map(\.name)
                func lookup(_ name: String, _ at: SourceMark, _ path: String) -> FilterDescriptor? {
                    if let f = d.filters.first(where: { $0.name == name }) { return f }
                    let hint = suggestion(for: name, in: names).map { "did you mean '\($0)'?" }
                        ?? "known filters: " + names.joined(separator: ", ")
                    d.error(at: at, path: path, "unknown filter '\(name)'", hint: hint)
                    return nil
                }
                switch node.kind {
                case .scalar(let name, .string):
                    guard let f = lookup(name, node.mark, node.path) else { return nil }
                    let empty = ConfigNode(kind: .mapping([]), mark: node.mark, path: ConfigNode.childPath(node.path, key: name))
                    if !f.worksWithDefaults {
                        d.error(node, "filter '\(name)' needs settings", hint: "write `- \(name): {...}` with its required keys")
                        return nil
                    }
                    return f.decode(empty, &d)
                case .mapping(let entries):
                    guard let first = entries.first else {
                        d.error(node, "empty chain entry", hint: "name a filter: `- request_id: {}`")
                        return nil
                    }
                    for extra in entries.dropFirst() {
                        let isFilter = names.contains(extra.key)
                        d.error(at: extra.keyMark, path: ConfigNode.childPath(node.path, key: extra.key),
                                isFilter ? "a chain entry holds one filter; '\(extra.key)' needs its own entry"
                                         : "unexpected key '\(extra.key)' next to filter '\(first.key)'",
                                hint: isFilter ? "start a new list item: `- \(extra.key): ...`"
                                               : "indent it under `\(first.key):` if it is part of its config")
                    }
                    guard let f = lookup(first.key, first.keyMark, ConfigNode.childPath(node.path, key: first.key)) else { return nil }
                    var value = first.value
                    if value.isNull {
                        value = ConfigNode(kind: .mapping([]), mark: value.mark, path: value.path)
                    }
                    return f.decode(value, &d)
                default:
                    ConfigType.typeMismatch("a filter entry", node, &d, hint: "write `- filter_name: {settings}`")
                    return nil
                }
            })
    }
}
