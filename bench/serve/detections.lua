-- wrk: 1000-detection pages starting at random frames of the seeded run.
local run = os.getenv("SEED_RUN") or "1"
math.randomseed(os.time())
request = function()
  local from = math.random(0, 800)
  return wrk.format("GET", "/api/v1/runs/" .. run .. "/detections?limit=1000&frame_from=" .. from)
end
