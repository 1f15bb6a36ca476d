import ProxCore

/// Live chain traces (`server.trace`): a request that carries the trace header with the secret
/// token gets a real `Trace`, the same type dry-run fills, with each entry stamped with the time
/// since the head arrived. The engine adds upstream connect and first-byte entries; the access
/// log writes the trace into the request's line, and the response carries `X-Prox-Trace-Id`
/// (the request id of that line).
enum LiveTrace {
    static let traceIDHeader = HeaderName("X-Prox-Trace-Id")

    /// Strips the trace header whatever it holds (stages and the upstream never see it), and
    /// starts a trace when its value is the token. Off the common path: only for configs with
    /// `server.trace`.
    @inline(never)
    static func activate(_ ctx: RequestContext) {
        // Most requests carry no line whose name is as long as the trace header's: they leave
        // after a walk of the line lengths, before the settings (and their retains) are touched.
        let length = ctx.snapshot.settings.liveTraceNameLength
        guard ctx.withHead({ $0.fields.hasLine(nameLength: length) }) else { return }
        // Only received lines: no stage has run yet.
        guard let live = ctx.snapshot.settings.liveTrace,
              let value = ctx.withHead({ h in h.fields.firstSlot(live.header).map { h.fields.value(ofSlot: $0) } }) else { return }
        ctx.withHead { $0.fields.remove(live.header) }
        guard !ctx.dryRun, live.accepts(value) else { return }
        ctx.trace = Trace(live: ())
        // The id names the access-log line the trace is in; a chain without request_id gets one.
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
    }

    /// Adds `X-Prox-Trace-Id` to a traced response.
    static func mark(_ ctx: RequestContext, _ head: inout ResponseHead) {
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
        head.fields.set(traceIDHeader, ctx.requestID)
    }

    /// The trace as JSON for the access-log line: the shape of `prox dry-run --format json`
    /// (`request`, `listener`, `route`, `stages`, `upstream`) with each stage's `at_us`.
    static func json(_ ctx: RequestContext, _ trace: Trace, status: Int, durationMicros: Int64) -> String {
        var o = "{\"request\":" + quote("\(ctx.head.method) \(ctx.head.target)")
        o += ",\"client\":" + quote(ctx.clientIPText)
        o += ",\"listener\":" + quote(ctx.listener.id)
        o += ",\"route\":" + (ctx.route.map { quote($0.id) } ?? "null")
        o += ",\"stages\":["
        for (i, e) in trace.entries.enumerated() {
            if i > 0 { o += "," }
            o += "{\"stage\":" + quote(e.stage) + ",\"looked\":" + quote(e.looked) + ",\"decided\":" + quote(e.decided)
                + ",\"why\":" + quote(e.why) + ",\"at_us\":" + (e.atMicros.map { String($0) } ?? "null") + "}"
        }
        o += "]"
        if let pool = ctx.poolID {
            o += ",\"upstream\":{\"pool\":" + quote(pool) + ",\"endpoint\":" + quote(ctx.endpoint ?? "")
                + ",\"target\":" + quote(ctx.head.effectiveTarget) + "}"
        }
        o += ",\"status\":\(status),\"duration_us\":\(durationMicros)}"
        return o
    }

    static func quote(_ s: String) -> String { JSONValue.quote(s) }
}
