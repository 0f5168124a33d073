-- Record output types in table-form signatures: the JSON schema DSPy writes for
-- the pydantic model (golden text, made with pydantic 2 and DSPy's type-first
-- ordering), recursive parsing with the path of a bad value, Optional fields and
-- enums inside records, the JSON adapter's strict structured output, and mockllm
-- (strict) answering valid nested values in the three wire formats.
local tide = require "tide"
local chat = require "tide.adapters.chat"
local json_adapter = require "tide.adapters.json"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local PROVIDERS = require("support.lm_server").PROVIDERS

-- class Address(BaseModel): street: str; zip: int
-- class Person(BaseModel): name: str; age: int; tags: list[str]; nick: Optional[str] = None;
--                          role: Literal['admin', 'user']; address: Address
local PERSON_SCHEMA = '{"type": "object", "$defs": {"Address": {"type": "object", "properties": ' ..
  '{"street": {"type": "string", "title": "Street"}, "zip": {"type": "integer", "title": "Zip"}}, ' ..
  '"required": ["street", "zip"], "title": "Address"}}, "properties": {"address": {"$ref": ' ..
  '"#/$defs/Address"}, "age": {"type": "integer", "title": "Age"}, "name": {"type": "string", ' ..
  '"title": "Name"}, "nick": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, ' ..
  '"title": "Nick"}, "role": {"type": "string", "enum": ["admin", "user"], "title": "Role"}, ' ..
  '"tags": {"type": "array", "items": {"type": "string"}, "title": "Tags"}}, "required": ' ..
  '["name", "age", "tags", "role", "address"], "title": "Person"}'
-- TypeAdapter(list[People]) with class People(BaseModel): name: str; age: int
local PEOPLE_SCHEMA = '{"type": "array", "$defs": {"People": {"type": "object", "properties": ' ..
  '{"age": {"type": "integer", "title": "Age"}, "name": {"type": "string", "title": "Name"}}, ' ..
  '"required": ["name", "age"], "title": "People"}}, "items": {"$ref": "#/$defs/People"}}'
-- class Item(BaseModel): first_name: str = Field(description="given name")
local ITEM_SCHEMA = '{"type": "object", "properties": {"first_name": {"type": "string", ' ..
  '"description": "given name", "title": "First Name"}}, "required": ["first_name"], "title": "Item"}'

local PERSON = {"name: str", "age: int", "tags: list[str]", "nick: Optional[str]",
                "role: one of: admin, user", {name = "address", type = {street = "str", zip = "int"}}}

local function signature()
  return tide.Signature{inputs = {"question"}, outputs = {
    {name = "person", type = PERSON},
    {name = "people", type = {kind = "list", of = {"name: str", "age: int"}}},
  }}
end

local function parse_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(tide.is_error(err, "parse"), tostring(err))
  return err
end

describe("record output types", function()
  after_each(assert_clean)

  it("are named as Python classes after their fields and shown as DSPy shows them", function()
    local sig = signature()
    assert.are.equal("record", sig.outputs[1].type.kind)
    assert.are.equal("Person", sig.outputs[1].type.text)
    assert.are.equal("list[People]", sig.outputs[2].type.text)
    local system = chat.format(sig, {question = "q"})[1].content
    assert.matches("1. `person` (Person): \n2. `people` (list[People]):", system, 1, true)
    assert.matches("[[ ## person ## ]]\n{person}        # note: the value you produce must " ..
      "adhere to the JSON schema: " .. PERSON_SCHEMA .. "\n", system, 1, true)
    assert.matches("[[ ## people ## ]]\n{people}        # note: the value you produce must " ..
      "adhere to the JSON schema: " .. PEOPLE_SCHEMA .. "\n", system, 1, true)
    local user = chat.format(sig, {question = "q"})[2].content
    assert.matches("`[[ ## person ## ]]` (must be formatted as a valid Python Person), then " ..
      "`[[ ## people ## ]]` (must be formatted as a valid Python list[People])", user, 1, true)
  end)

  it("write a field's description and pydantic's title of a snake_case name", function()
    local sig = tide.Signature{inputs = {"q"}, outputs = {{name = "item", type = {
      {name = "first_name", type = "str", desc = "given name"}}}}}
    assert.matches(ITEM_SCHEMA, chat.format(sig, {q = "q"})[1].content, 1, true)
  end)

  it("keep a list's field order and put a map's fields in name order", function()
    local listed = tide.Signature{inputs = {"q"}, outputs = {{name = "p", type = {"b: int", "a: int"}}}}
    local mapped = tide.Signature{inputs = {"q"}, outputs = {{name = "p", type = {b = "int", a = "int"}}}}
    assert.matches('"required": ["b", "a"]', chat.format(listed, {q = "q"})[1].content, 1, true)
    assert.matches('"required": ["a", "b"]', chat.format(mapped, {q = "q"})[1].content, 1, true)
  end)

  it("parse recursively: ints exact, optional fields absent, enums matched", function()
    local out = chat.parse(signature(), '[[ ## person ## ]]\n{"name": "Ann", "age": 41.0, ' ..
      '"tags": ["a", "b"], "role": "Admin", "address": {"street": "Main", "zip": "9"}}\n\n' ..
      '[[ ## people ## ]]\n[{"name": "Bo", "age": 7}]\n\n[[ ## completed ## ]]')
    assert.are.same({name = "Ann", age = 41, tags = {"a", "b"}, role = "admin",
                      address = {street = "Main", zip = 9}}, out.person)
    assert.are.equal("integer", math.type(out.person.age))
    assert.are.equal("integer", math.type(out.person.address.zip))
    assert.is_nil(out.person.nick)
    assert.are.same({{name = "Bo", age = 7}}, out.people)
  end)

  it("name the path of a bad nested value in the parse error", function()
    local sig = signature()
    local good_people = '\n\n[[ ## people ## ]]\n[]\n\n[[ ## completed ## ]]'
    local err = parse_error(chat.parse, sig, '[[ ## person ## ]]\n{"name": "Ann", "age": 4, ' ..
      '"tags": ["a", 5], "role": "user", "address": {"street": "x", "zip": 1}}' .. good_people)
    assert.matches("field `person` must be Person: person.tags[2]: 5 is not a valid str",
      err.message, 1, true)
    assert.are.equal("person", err.field)
    err = parse_error(chat.parse, sig, '[[ ## person ## ]]\n{"name": "Ann", "age": 4, ' ..
      '"tags": [], "role": "user", "address": {"street": "x"}}' .. good_people)
    assert.matches("person.address.zip: missing (a required field of Address)", err.message, 1, true)
    err = parse_error(json_adapter.parse, sig, '{"person": {"name": "A", "age": 1, "tags": [], ' ..
      '"role": "root", "address": {"street": "x", "zip": 1}}, "people": []}')
    assert.matches("person.role: \"root\" is not a valid Literal['admin', 'user'] (one of: admin, user)",
      err.message, 1, true)
    err = parse_error(json_adapter.parse, sig, '{"person": {"name": "A", "age": 1, "tags": [], ' ..
      '"role": "user", "address": {"street": "x", "zip": 1}}, "people": [{"name": "B", "age": "old"}]}')
    assert.matches('people[1].age: "old" is not a valid int', err.message, 1, true)
  end)

  it("write a demo's record in its fields' order, missing optional ones as null", function()
    local sig = signature()
    local msgs = chat.format(sig, {question = "q"}, {{question = "d", person = {
      address = {zip = 1, street = "s"}, role = "user", tags = {}, age = 3, name = "N"},
      people = {{age = 2, name = "M"}}}})
    assert.are.equal('[[ ## person ## ]]\n{"name": "N", "age": 3, "tags": [], "nick": null, ' ..
      '"role": "user", "address": {"street": "s", "zip": 1}}\n\n[[ ## people ## ]]\n' ..
      '[{"name": "M", "age": 2}]\n\n[[ ## completed ## ]]\n', msgs[3].content)
  end)

  it("ask for strict structured output with every nested field required", function()
    local rf = json_adapter.response_format(signature())
    assert.are.equal("json_schema", rf.type)
    local person = rf.schema.properties.person
    assert.is_false(person.additionalProperties)
    assert.are.same({"name", "age", "tags", "nick", "role", "address"}, person.required)
    assert.are.same({anyOf = {{type = "string"}, {type = "null"}}}, person.properties.nick)
    assert.are.same({type = "string", enum = {"admin", "user"}}, person.properties.role)
    assert.are.same({"street", "zip"}, person.properties.address.required)
    assert.is_false(rf.schema.properties.people.items.additionalProperties)
  end)

  it("refuse bad record specs naming the field", function()
    local function bad(outputs) return select(2, pcall(tide.Signature, {inputs = {"q"}, outputs = outputs})) end
    assert.matches("field 'p': a record needs at least one field",
      bad{{name = "p", type = {kind = "list", of = {}}}}, 1, true)
    assert.matches("field 'p': field 'age': unknown type 'integer'",
      bad{{name = "p", type = {age = "integer"}}}, 1, true)
    assert.matches("record field 'pic' cannot be Image", bad{{name = "p", type = {pic = "image"}}}, 1, true)
  end)

  describe("against mockllm", function()
    local server
    setup(function() server = mockllm.start() end)
    teardown(function() server:stop() end)

    for _, p in ipairs(PROVIDERS) do
      for _, adapter in ipairs{chat, json_adapter} do
        it(p.name .. ", " .. adapter.name .. " adapter: a valid nested answer, typed", function()
          local lm = tide.LM(p.model, {api_key = "sk-spec", base_url = p.base(server),
                                       cache = false, num_retries = 0})
          local pr = tide.Predict(signature(), {lm = lm, adapter = adapter, fallback = false})
          local out = pr({question = "Who is on the team?"})
          assert.is_string(out.person.name)
          assert.are.equal("integer", math.type(out.person.age))
          assert.are.equal("admin", out.person.role)
          assert.is_string(out.person.tags[1])
          assert.is_string(out.person.address.street)
          assert.are.equal("integer", math.type(out.person.address.zip))
          assert.is_true(#out.people >= 1)
          assert.are.equal("integer", math.type(out.people[1].age))
          -- the JSON adapter's request carried the strict schema mockllm checks
          if adapter == json_adapter then
            assert.are.equal("json_schema", json_adapter.response_format(pr.signature).type)
          end
        end)
      end
    end

    it("a reply missing a nested field fails with its path, after the JSON fallback", function()
      local lm = tide.LM("openai/gpt-4o-mini", {api_key = "sk-spec", base_url = server.url .. "/v1",
        cache = false, num_retries = 0, headers = {["X-Mock-Scenario"] = "reply=" ..
          ('[[ ## person ## ]]\n{"name": "A", "age": 1, "tags": [], "role": "user", "address": {}}' ..
           '\n\n[[ ## people ## ]]\n[]\n\n[[ ## completed ## ]]'):gsub("[^%w]", function(c)
             return string.format("%%%02X", c:byte()) end)}})
      local err = parse_error(tide.Predict(signature(), {lm = lm, fallback = false}), {question = "q"})
      assert.matches("person.address.street: missing (a required field of Address)", err.message, 1, true)
      assert.are.equal("chat", err.adapter)
    end)
  end)
end)
