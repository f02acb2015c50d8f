package conformance

import "time"

// Scenarios returns the suite in the order Run runs it. The scenarios that
// look at how a server takes two descriptors at once come before any
// scenario that makes a descriptor send fail: in Postfix such a failure
// switches the scache(8) process to the CMSG_LEN workaround for good.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "greeting", Summary: "the server speaks first: protocol=connection_cache_protocol, nothing else", Run: greetingScenario},
		{Name: "greeting_once_per_connection", Summary: "the greeting comes once per connection, never with a reply", Run: greetingOnce},
		{Name: "find_endp_miss", Summary: "find_endp miss: status 2 and one empty property", Run: findEndpMiss},
		{Name: "find_dest_miss", Summary: "find_dest miss: status 2 and two empty properties", Run: findDestMiss},
		{Name: "save_endp_find_endp_wire", Summary: "save_endp and a find_endp hit byte for byte, descriptor by identity", Run: saveFindEndpWire},
		{Name: "save_dest_find_dest_wire", Summary: "save_dest and a find_dest hit byte for byte, descriptor by identity", Run: saveFindDestWire},
		{Name: "save_dest_without_endpoint", Summary: "a binding to an endpoint without sessions is accepted; find_dest misses", Run: saveDestWithoutEndpoint},
		{Name: "fifo_order_oldest_first", Summary: "sessions of one endpoint come back oldest first", Run: fifoOrder},
		{Name: "session_handed_out_once", Summary: "a session is handed out once, to one client", Run: handedOutOnce},
		{Name: "contended_single_session", Summary: "16 clients race for one session (by endpoint and by destination): exactly one wins", Run: contendedSingleSession},
		{Name: "endpoint_labels_exact_match", Summary: "labels match byte for byte, case-sensitive", Run: labelsExactMatch},
		{Name: "empty_label_and_property", Summary: "the empty string is a valid label and property", Run: emptyLabelAndProperty},
		{Name: "find_dest_searches_endpoints_in_order", Summary: "find_dest tries bindings oldest first, skips (and keeps) those without sessions", Run: findDestInOrder},
		{Name: "dest_binding_persists_after_use", Summary: "a binding survives the hand-outs made through it", Run: bindingPersists},
		{Name: "dest_refresh_keeps_position", Summary: "save_dest with the same endpoint and property refreshes in place", Run: destRefreshKeepsPosition},
		{Name: "dest_same_endpoint_new_property_adds_binding", Summary: "a new property adds a binding that loses to the older one while it lives", Run: destNewPropertyAddsBinding},
		{Name: "session_survives_client_disconnect", Summary: "a session outlives the connection that stored it", Run: sessionSurvivesDisconnect},
		{Name: "endp_ttl_expiry", Summary: "a session expires after its ttl and the server closes it", Run: endpTTLExpiry},
		{Name: "ttl_clamped_to_limit", Summary: "ttl 3600 is accepted and clamped to the ttl limit, for sessions and bindings", Run: ttlClamped},
		{Name: "dest_refresh_extends_ttl", Summary: "refreshing a binding moves its deadline", Run: destRefreshExtendsTTL},
		{Name: "bad_ttl_values", Summary: "ttl <= 0 or malformed: status 1, no dummy, nothing stored", Run: badTTLValues},
		{Name: "ttl_parse_edge_cases", Summary: "ttl as sscanf(\"%u%c\") reads it: blanks, signs, 32-bit wrap", Run: ttlParseEdgeCases},
		{Name: "error_matrix", Summary: "every row of the error matrix, byte for byte, connection usable after", Run: errorMatrix},
		{Name: "extra_attribute_after_all_executed", Summary: "extra attributes after the expected ones: every request executed normally, with its descriptor exchange", Run: extraTrailingExecuted},
		{Name: "no_reply_not_request", Summary: "no reply to a list not starting with request, nor to an empty list", Run: noReplyNotRequest},
		{Name: "resync_on_request_string", Summary: "after garbage, a \"request\" string starts a request", Run: resyncOnRequestString},
		{Name: "pipelined_requests", Summary: "two requests in one write [deliberate difference]", Run: pipelinedRequests},
		{Name: "dummy_concatenated_with_next_request", Summary: "the trailing dummy and the next request in one write: answered", Run: dummyConcatenated},
		{Name: "save_endp_missing_descriptor", Summary: "a byte without a descriptor after the dummy: status 2", Run: saveEndpMissingDescriptor},
		{Name: "unexpected_descriptors_closed", Summary: "descriptors nobody asked for [deliberate difference]", Run: unexpectedDescriptorsClosed},
		{Name: "save_endp_multiple_descriptors", Summary: "two descriptors after the dummy: status 2 (Postfix: CMSG_LEN workaround accounted for)", Run: saveEndpMultipleDescriptors},
		{Name: "descriptor_before_dummy", Summary: "a descriptor glued to its save_endp request [deliberate difference]", Run: descriptorBeforeDummy},
		{Name: "wrong_attribute_instead_of_dummy", Summary: "a request instead of the dummy of a hand-out: session lost, input read as new", Run: wrongAttributeInsteadOfDummy},
		{Name: "stalled_client_does_not_break_others", Summary: "a client stalled mid-request or owing a descriptor [deliberate difference]", Run: stalledClient},
		{Name: "disconnect_mid_request", Summary: "disconnects at every step of every request; server serves, cache intact", Run: disconnectMidRequest, Limit: 60 * time.Second},
		{Name: "binary_safe_strings", Summary: "labels and properties with every byte but NUL", Run: binarySafeStrings},
		{Name: "large_strings", Summary: "256 KiB labels, 1 MiB properties", Run: largeStrings},
		{Name: "many_descriptors", Summary: "250 sessions cached at once, all handed back intact", Run: manyDescriptors},
		{Name: "concurrent_clients", Summary: "16 clients x 45 requests at once", Run: concurrentClients},
	}
}
