-- wrk script: replays the pre-made signing requests (one JSON body per line of the file given
-- after "--"), each thread starting at a different offset, and counts non-200 answers.
local bodies = {}
local idx = 0
local failures = 0

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  idx = math.random(#bodies)
end

function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", "/api/v2/signingCert", { ["Content-Type"] = "application/json" },
                    bodies[idx])
end

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if failures <= 3 then
      io.stderr:write("non-200: " .. status .. " " .. body:sub(1, 200) .. "\n")
    end
  end
end
