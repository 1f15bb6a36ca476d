import Foundation
import ProxCore
import ProxFilters

/// The JSON Schema (2020-12) of the config document, generated from the same declarations the
/// loader decodes with. Committed at `schemas/prox.schema.json`; a test keeps the two equal.
public enum ConfigSchema {
    public static func jsonSchema(filters: FilterRegistry = BuiltinFilters.registry) -> String {
        schemaValue(filters: filters).rendered() + "\n"
    }

    public static func schemaValue(filters: FilterRegistry = BuiltinFilters.registry) -> JSONValue {
        var ctx = SchemaContext(filters: filters.descriptors)
        let root = ProxDocument.objectSchema(&ctx)
        guard case .object(let members) = root else { return root }
        var out: [(String, JSONValue)] = [
            ("$schema", .string("https://json-schema.org/draft/2020-12/schema")),
            ("title", .string("Prox configuration")),
        ]
        out += members
        out.append(("$defs", ctx.definitionsValue))
        return .object(out)
    }

    /// The JSON Schema of a policy file (`prox validate --policy`). Committed at
    /// `schemas/policy.schema.json`.
    public static func policySchema() -> String {
        var ctx = SchemaContext(filters: [])
        let root = PolicyDocument.objectSchema(&ctx)
        var out: [(String, JSONValue)] = [
            ("$schema", .string("https://json-schema.org/draft/2020-12/schema")),
            ("title", .string("Prox policy")),
        ]
        if case .object(let members) = root { out += members }
        out.append(("$defs", ctx.definitionsValue))
        return JSONValue.object(out).rendered() + "\n"
    }

    /// The JSON Schema of one filter's config (the value under its name in a chain entry).
    /// Committed at `schemas/filters/<name>.json` for every filter of the shipped registry.
    public static func filterSchema(_ filter: FilterDescriptor) -> String {
        var ctx = SchemaContext(filters: [])
        let ref = filter.schema(&ctx)
        var out: [(String, JSONValue)] = [
            ("$schema", .string("https://json-schema.org/draft/2020-12/schema")),
            ("title", .string("Prox filter '\(filter.name)'")),
            ("description", .string(filter.summary)),
        ]
        if case .object(let members) = ref { out += members }
        out.append(("$defs", ctx.definitionsValue))
        return JSONValue.object(out).rendered() + "\n"
    }
}

/// The reference part of docs/CONFIG.md, generated from the declarations.
public enum ConfigDocs {
    public static let beginMarker = "<!-- BEGIN GENERATED REFERENCE: made from the declarations in Sources/; regenerate with PROX_REGENERATE=1 swift test --filter GeneratedFilesTests -->"
    public static let endMarker = "<!-- END GENERATED REFERENCE -->"

    public static func reference(filters: FilterRegistry = BuiltinFilters.registry) -> String {
        var out = "## Reference\n\n"
        out += "Every key of the document. Sizes are bytes as an integer or with a unit (`512B`, `64KiB`, `1MiB`, `10MB`); durations have a unit (`500ms`, `5s`, `1m`, `1h`, `1m30s`); addresses are `host:port` (`[::1]:8080` for IPv6).\n\n"
        out += ConfigReference.sections(from: ProxDocument.self)
        out += "## Filters\n\n"
        out += "A chain entry names one filter and holds its config: `- request_id: {trust_incoming: true}`. A filter whose keys all have defaults may be written by name alone: `- request_id`.\n\n"
        out += ConfigReference.filters(filters.descriptors)
        return out
    }

    /// The reference part of docs/POLICY.md.
    public static func policyReference() -> String {
        "## Reference\n\nEvery key of a policy file. Sizes and durations are written as in configs (`10MiB`, `30s`).\n\n"
            + ConfigReference.sections(from: PolicyDocument.self)
    }

    /// Replaces the generated part of a POLICY.md text (between the markers).
    public static func updatingPolicy(_ markdown: String) -> String? {
        guard let b = markdown.range(of: beginMarker), let e = markdown.range(of: endMarker), b.upperBound <= e.lowerBound else { return nil }
        return String(markdown[..<b.upperBound]) + "\n\n" + policyReference() + String(markdown[e.lowerBound...])
    }

    /// Replaces the generated part of a CONFIG.md text (between the markers).
    public static func updating(_ markdown: String, filters: FilterRegistry = BuiltinFilters.registry) -> String? {
        guard let b = markdown.range(of: beginMarker), let e = markdown.range(of: endMarker), b.upperBound <= e.lowerBound else { return nil }
        return String(markdown[..<b.upperBound]) + "\n\n" + reference(filters: filters) + String(markdown[e.lowerBound...])
    }
}
