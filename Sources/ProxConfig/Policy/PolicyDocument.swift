import ProxCore

/// A policy file: organisation rules a config must keep before it may be activated. Decoded
/// with the same declarations as the config (positioned errors, did-you-mean, generated schema at
/// `schemas/policy.schema.json`).
struct PolicyDocument: ConfigObject {
    var schemaURI: String?
    var version = 1
    var rules: [PolicyRule] = []

    static let schemaName = "Policy"
    static let doc = "Rules a Prox config must keep. `prox validate --policy FILE` reports every rule a config breaks; `prox serve --policy FILE` refuses to activate (at start or on reload) a config that breaks a rule whose severity is `enforce`."

    static var fields: [ConfigField<Self>] {[
        .field("$schema", \.schemaURI, .string, doc: "The JSON Schema of this file, for editors. Ignored by Prox."),
        .field("version", \.version, ConfigType<Int>.oneOf([1]), required: true, doc: "The format version. Always 1 for now."),
        .field("rules", \.rules, ConfigType.object(PolicyRule.self).list(minItems: 1), required: true,
               doc: "The rules. Each selects routes and states what they must have."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        var seen: [String: Int] = [:]
        for (i, r) in rules.enumerated() {
            guard let id = r.id else { continue }
            if let first = seen[id.value] {
                decoder.error(id.node, "rule id '\(id.value)' is used twice", hint: "it is already rules[\(first)]")
            } else { seen[id.value] = i }
        }
    }
}

enum PolicySeverity: String, CaseIterable {
    case warn, enforce
}

struct PolicyRule: ConfigObject {
    var id: Positioned<String>?
    var description: String?
    var severity = PolicySeverity.enforce
    var select = PolicySelector()
    var require = PolicyRequirement()
    var node: ConfigNode?

    static let schemaName = "PolicyRule"
    static let doc = "One rule: which routes it applies to, and what they must have."

    static var fields: [ConfigField<Self>] {[
        .field("id", \.id, ConfigType.identifier.positioned, required: true, doc: "Name of the rule in diagnostics."),
        .field("description", \.description, .string, doc: "Why the rule exists; shown with each violation."),
        .field("severity", \.severity, ConfigType<PolicySeverity>.enumeration(PolicySeverity.self),
               doc: "`enforce`: a config that breaks the rule is invalid (validate exits 1, serve refuses it). `warn`: reported, still valid."),
        .field("select", \.select, .object(PolicySelector.self), default: "every route",
               doc: "Which routes the rule applies to. Every condition given must hold."),
        .field("require", \.require, .object(PolicyRequirement.self), required: true,
               doc: "What each selected route must have. Every requirement given must hold."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) { self.node = node }
}

/// Which routes a rule applies to.
struct PolicySelector: ConfigObject {
    var routes: [String]?
    var tags: [String]?
    var listeners: [String]?
    var listenersOtherThan: [String]?
    var hosts: [String]?
    var paths: [String]?
    var actions: [String]?

    static let schemaName = "PolicySelector"
    static let doc = "Conditions on a route; all given must hold. Patterns use `*` for any run of characters."

    static var fields: [ConfigField<Self>] {[
        .field("routes", \.routes, ConfigType.string(minLength: 1).list(minItems: 1), default: "any",
               doc: "Route id patterns: `api-*`."),
        .field("tags", \.tags, ConfigType.identifier.list(minItems: 1), default: "any",
               doc: "The route carries at least one of these `tags`."),
        .field("listeners", \.listeners, ConfigType.identifier.list(minItems: 1), default: "any",
               doc: "The route is reachable on at least one of these listeners (a route without `listeners` is reachable on all)."),
        .field("listeners_other_than", \.listenersOtherThan, ConfigType.identifier.list(minItems: 1), default: "any",
               doc: "The route is reachable on some listener not in this list: `[internal]` selects every route a client can reach from outside the internal listener."),
        .field("hosts", \.hosts, ConfigType.string(minLength: 1).list(minItems: 1), default: "any",
               doc: "Patterns over the route's `match.host` values as written (`*.example.com` written in the config is matched as text); a route with no host condition is matched by `*` only."),
        .field("paths", \.paths, ConfigType.string(minLength: 1).list(minItems: 1), default: "any",
               doc: "Patterns over the route's path condition as written (the exact path, the prefix, or the regex); a route with no path condition is matched by `*` only."),
        .field("actions", \.actions, ConfigType.oneOf(["proxy", "respond", "redirect"]).list(minItems: 1), default: "any",
               doc: "The route's action is one of these."),
    ]}
}

/// A bound on a number: a size (`10MiB`), a duration (`30s`) or a plain integer.
struct PolicyBound {
    enum Unit: String { case bytes, milliseconds, number }
    var value: Int64
    var unit: Unit
    var text: String

    static var type: ConfigType<PolicyBound> {
        ConfigType(
            docName: "size, duration or integer",
            schema: { _ in .object([("anyOf", .array([
                .object([("type", .string("integer"))]),
                .object([("type", .string("string")), ("pattern", .string(SizeText.pattern))]),
                .object([("type", .string("string")), ("pattern", .string(DurationText.pattern))]),
            ]))]) },
            decode: { node, d in
                guard let s = node.scalar, node.entries == nil else {
                    d.error(node, "expected a size (10MiB), a duration (30s) or an integer, found \(node.kindDescription)")
                    return nil
                }
                if case .scalar(_, .integer) = node.kind, let v = Int64(s) { return PolicyBound(value: v, unit: .number, text: s) }
                if let v = SizeText.parse(s) { return PolicyBound(value: v, unit: .bytes, text: s) }
                if let v = DurationText.parse(s) { return PolicyBound(value: v, unit: .milliseconds, text: s) }
                d.error(node, "'\(s)' is not a size (10MiB), a duration (30s) or an integer")
                return nil
            },
            render: { .string($0.text) })
    }
}

/// A setting of a filter in the route's chain that must lie in a range or equal a value.
struct PolicyFilterSetting: ConfigObject {
    var filter: Positioned<String>?
    var key = ""
    var atMost: PolicyBound?
    var atLeast: PolicyBound?
    var equals: String?

    static let schemaName = "PolicyFilterSetting"
    static let doc = "A key of a filter's config in the route's chain, and the range or value it must have. The filter must be in the chain."

    static var fields: [ConfigField<Self>] {[
        .field("filter", \.filter, ConfigType.identifier.positioned, required: true, doc: "The filter type: `body_limit`."),
        .field("key", \.key, .string(minLength: 1), required: true, doc: "The key in the filter's config, dotted for nested keys: `max_bytes`."),
        .field("at_most", \.atMost, PolicyBound.type, doc: "The value must be at most this."),
        .field("at_least", \.atLeast, PolicyBound.type, doc: "The value must be at least this."),
        .field("equals", \.equals, .string, doc: "The value, as written, must be this."),
    ]}
}

/// An attribute of every pool the route proxies to (through a split, every pool of it).
struct PolicyPoolSetting: ConfigObject {
    var key = ""
    var atMost: PolicyBound?
    var atLeast: PolicyBound?
    var equals: String?

    static let keys = ["timeouts.connect", "timeouts.response_header", "timeouts.body_idle", "timeouts.idle",
                       "limits.max_connections_per_endpoint", "limits.max_idle_per_endpoint", "balancer", "endpoints"]

    static let schemaName = "PolicyPoolSetting"
    static let doc = "An attribute of every pool the route proxies to, with its default when the pool does not set it."

    static var fields: [ConfigField<Self>] {[
        .field("key", \.key, ConfigType.oneOf(keys), required: true,
               doc: "The attribute: a pool key (`timeouts.response_header`, `balancer`, ...) or `endpoints` (how many)."),
        .field("at_most", \.atMost, PolicyBound.type, doc: "The value must be at most this."),
        .field("at_least", \.atLeast, PolicyBound.type, doc: "The value must be at least this."),
        .field("equals", \.equals, .string, doc: "The value must be this (`least_request`)."),
    ]}
}

/// What a selected route must have.
struct PolicyRequirement: ConfigObject {
    var filter: Positioned<String>?
    var before: Positioned<String>?
    var filterSetting: PolicyFilterSetting?
    var pool: PolicyPoolSetting?
    var notProxyTo: [String]?
    var anchoredRegex: Bool?

    static let schemaName = "PolicyRequirement"
    static let doc = "What a selected route must have; every requirement given must hold."
    static let rules: [ConfigRule] = [.requires("before", ["filter"])]

    static var fields: [ConfigField<Self>] {[
        .field("filter", \.filter, ConfigType.identifier.positioned, doc: "A filter type the route's chain must contain: `request_id`."),
        .field("before", \.before, ConfigType.identifier.positioned,
               doc: "With `filter`: when the chain also contains this filter, `filter` must come before it."),
        .field("filter_setting", \.filterSetting, .object(PolicyFilterSetting.self), doc: "A setting of a filter in the chain."),
        .field("pool", \.pool, .object(PolicyPoolSetting.self), doc: "An attribute of the pools the route proxies to; routes that do not proxy pass."),
        .field("not_proxy_to", \.notProxyTo, ConfigType.identifier.list(minItems: 1), doc: "Pools the route must not proxy to, directly or through a split."),
        .field("anchored_regex", \.anchoredRegex, .constTrue,
               doc: "`true`: a path regex must be anchored at the start (`^` or `\\A`); an unanchored one searches the whole path and matches more than it seems to."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        if filter == nil && filterSetting == nil && pool == nil && notProxyTo == nil && anchoredRegex == nil {
            decoder.error(node, "a requirement needs at least one of filter, filter_setting, pool, not_proxy_to, anchored_regex")
        }
        for (b, name) in [(atMostOf(pool?.atMost, pool?.atLeast), "pool"), (atMostOf(filterSetting?.atMost, filterSetting?.atLeast), "filter_setting")] where b {
            decoder.error(node, "\(name): at_least is larger than at_most")
        }
    }

    private func atMostOf(_ hi: PolicyBound?, _ lo: PolicyBound?) -> Bool {
        guard let hi, let lo, hi.unit == lo.unit else { return false }
        return lo.value > hi.value
    }
}
