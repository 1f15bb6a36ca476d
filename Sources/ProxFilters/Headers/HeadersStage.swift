import ProxCore

/// Applies precompiled header edits to the request (upstream-bound) and the response.
public struct HeadersStage: Stage {
    public enum Edit: Sendable {
        case remove(HeaderName)
        case set(HeaderName, Template)
        case add(HeaderName, Template)

        /// Edits the response head (not part of `ctx`).
        func apply(_ fields: inout HeaderFields, _ ctx: RequestContext) {
            switch self {
            case .remove(let n): fields.remove(n)
            case .set(let n, let t): fields.set(n, t.render(ctx))
            case .add(let n, let t): fields.add(n, t.render(ctx))
            }
        }

        /// Edits the request head. Templates read `ctx.head`, so each value is rendered before
        /// the head is modified.
        func applyToRequest(_ ctx: RequestContext) {
            switch self {
            case .remove(let n): ctx.head.fields.remove(n)
            case .set(let n, let t): let v = t.render(ctx); ctx.head.fields.set(n, v)
            case .add(let n, let t): let v = t.render(ctx); ctx.head.fields.add(n, v)
            }
        }

        /// The edit with its value rendered for this request (dry-run traces).
        func traced(_ ctx: RequestContext) -> String {
            switch self {
            case .remove(let n): return "remove \(n.name)"
            case .set(let n, let t): return "set \(n.name): \(t.render(ctx))" + (t.constant == nil ? " (from \(t.source))" : "")
            case .add(let n, let t): return "add \(n.name): \(t.render(ctx))" + (t.constant == nil ? " (from \(t.source))" : "")
            }
        }

        var summary: String {
            switch self {
            case .remove(let n): return "remove \(n.name)"
            case .set(let n, let t): return "set \(n.name): \(t.source)"
            case .add(let n, let t): return "add \(n.name): \(t.source)"
            }
        }
    }

    public let requestEdits: [Edit]
    public let responseEdits: [Edit]
    /// The same edits, each behind one reference, for the hot path: an `Edit` read out of its
    /// array for a `switch` was copied with its name and template (four retains and releases
    /// an edit a request, callgrind); a `Step` is used in place.
    let requestSteps: [Step]
    let responseSteps: [Step]

    public init(requestEdits: [Edit], responseEdits: [Edit]) {
        self.requestEdits = requestEdits
        self.responseEdits = responseEdits
        self.requestSteps = requestEdits.map(Step.init)
        self.responseSteps = responseEdits.map(Step.init)
    }

    /// One edit, immutable, shared by every request.
    final class Step: Sendable {
        enum Kind { case remove, set, add }
        let kind: Kind
        let name: HeaderName
        /// nil for `remove`.
        let template: Template?
        /// The template is `{request_id}` alone: the id is written as its bytes.
        let writesRequestID: Bool

        init(_ edit: Edit) {
            switch edit {
            case .remove(let n): (kind, name, template) = (.remove, n, nil)
            case .set(let n, let t): (kind, name, template) = (.set, n, t)
            case .add(let n, let t): (kind, name, template) = (.add, n, t)
            }
            writesRequestID = template?.isRequestIDAlone ?? false
        }

        /// As `Edit.applyToRequest`: the value is rendered before the head is modified.
        func applyToRequest(_ ctx: RequestContext) {
            switch kind {
            case .remove: ctx.head.fields.remove(name)
            case .set where writesRequestID: ctx.writeRequestID(name, into: &ctx.head.fields, replacing: true)
            case .add where writesRequestID: ctx.writeRequestID(name, into: &ctx.head.fields, replacing: false)
            // Lent bytes: a rendered string, never `ctx.head`'s own.
            case .set: template.unsafelyUnwrapped.withRendered(ctx) { ctx.head.fields.set(name, bytes: $0) }
            case .add: template.unsafelyUnwrapped.withRendered(ctx) { ctx.head.fields.add(name, bytes: $0) }
            }
        }

        /// As `Edit.apply`.
        func apply(_ fields: inout HeaderFields, _ ctx: RequestContext) {
            switch kind {
            case .remove: fields.remove(name)
            case .set where writesRequestID: ctx.writeRequestID(name, into: &fields, replacing: true)
            case .add where writesRequestID: ctx.writeRequestID(name, into: &fields, replacing: false)
            case .set: template.unsafelyUnwrapped.withRendered(ctx) { fields.set(name, bytes: $0) }
            case .add: template.unsafelyUnwrapped.withRendered(ctx) { fields.add(name, bytes: $0) }
            }
        }
    }

    public var kind: String { HeadersFactory.name }
    public var handlesResponse: Bool { !responseEdits.isEmpty }

    public func request(_ ctx: RequestContext) -> Verdict {
        if ctx.isTracing {
            // Dry-run shows each value as rendered for this request, next to its template.
            let shown = requestEdits.map { $0.traced(ctx) }
            for e in requestEdits { e.applyToRequest(ctx) }
            ctx.record(kind, looked: "request headers", decided: shown.joined(separator: "; "), why: "the filter's request edits")
            return .next
        }
        for step in requestSteps { step.applyToRequest(ctx) }
        return .next
    }

    public func response(_ ctx: RequestContext, _ head: inout ResponseHead) {
        for step in responseSteps { step.apply(&head.fields, ctx) }
        if ctx.isTracing {
            ctx.record(kind, looked: "response headers", decided: responseEdits.map { $0.traced(ctx) }.joined(separator: "; "),
                       why: "the filter's response edits")
        }
    }
}
