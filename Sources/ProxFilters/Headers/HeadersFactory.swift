import ProxCore

public enum HeadersFactory: FilterFactory {
    public static let name = "headers"
    public static let summary = "Sets, adds and removes request and response headers; values are templates."

    /// Headers the engine owns: changing them would break framing or the connection.
    static let managed: Set<HeaderName> = [.contentLength, .transferEncoding, .connection, .keepAlive, .te, .trailer, .upgrade]

    public static func makeStage(_ config: HeadersConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        var failed = false
        func compile(_ edits: HeaderEditsConfig?, request: Bool) -> [HeadersStage.Edit] {
            guard let edits else { return [] }
            var out: [HeadersStage.Edit] = []
            for r in edits.remove {
                if check(r.value, r.node, request: request, &context) { out.append(.remove(r.value)) } else { failed = true }
            }
            for (list, isSet) in [(edits.set, true), (edits.add, false)] {
                for e in list {
                    let name = HeaderName(e.key)
                    guard check(name, e.keyNode, request: request, &context) else { failed = true; continue }
                    if isSet, edits.remove.contains(where: { $0.value == name }) {
                        context.error(e.keyNode, "'\(e.key)' is both removed and set", hint: "`set` already replaces every line; drop it from `remove`")
                        failed = true
                    }
                    guard let t = context.template(e.value) else { failed = true; continue }
                    out.append(isSet ? .set(name, t) : .add(name, t))
                }
            }
            return out
        }
        let req = compile(config.request, request: true)
        let resp = compile(config.response, request: false)
        return failed ? nil : HeadersStage(requestEdits: req, responseEdits: resp)
    }

    static func check(_ name: HeaderName, _ node: ConfigNode, request: Bool, _ context: inout FilterBuildContext) -> Bool {
        if managed.contains(name) {
            context.error(node, "'\(name.name)' is managed by Prox (framing and connection handling) and cannot be edited")
            return false
        }
        if request && name == .host {
            context.error(node, "the Host sent upstream is set with the route's `rewrite.host`", hint: "rewrite: {host: \"...\"}")
            return false
        }
        return true
    }
}
